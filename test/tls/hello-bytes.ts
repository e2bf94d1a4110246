/**
 * ClientHello bytes for the SNI tests: a real one captured from a Bun 1.4.5 TLS client, and crafted ones
 * (as large as the `sni` listener accepts, split into as many records as needed).
 *
 * @module
 */

/**
 * A ClientHello captured on loopback from `Bun.connect({ tls: { serverName: "Alt.Example", ALPNProtocols:
 * h2 } })` (Bun 1.4.5, BoringSSL; one record of 1478 bytes; TLS 1.3 with a post-quantum key share,
 * so it is larger than a classic one). Its SNI extension is the first one, after the cipher suites.
 */
const CAPTURED_HEX =
  "16030105c6010005c203036edc15071b7cda5ba4eaf0ae00cdc49d46b76192c37711de5ed4bafc00c0917420816cac655c5f" +
  "3ec7a72f77fe8e5aa11ffe43476413bbe9cedbd26ceb16c4dc6f0022130113021303c02bc02fc02cc030cca9cca8c009c013" +
  "c00ac014009c009d002f00350100055700000010000e00000b416c742e4578616d706c6500170000ff01000100000a000a00" +
  "0811ec001d00170018000b0002010000230000001000050003026832000d0018001604030804040105030805050108060601" +
  "080706030201003304ea04e811ec04c044ec5e2a28742aa458cfe530c266a2b838c1e932432e176d7ca237217961e070a585" +
  "8aa8dc172068852dab0368f982515075af89e6b19db714c6d89dbf5033caeb6e4da5bb0a16b44f634d0b275628d28093a9a2" +
  "19735ead6154c0aaa682b6b97a739a64aa2aa2b48f3473bb1ce60801a7932ac6880f403edff12bff94154c0c1e10a5846476" +
  "412c0b3fdbd437d68c3e8182bcf3a2b1ee88c3abb8315e1a8fcfa7b7f7444155055a76260c58f80817a099dcf904e47a8e58" +
  "e1611c00750839a2e3460650b29d77f77dbf8020acd525cf6153db53a92fd0c0e12767bc999d7cd103db4066dae5a015d123" +
  "251c5c8f68c54a2029fcb05717f863aed1460c2579ef0b5ea712240ae2a744f077a5930b05d53fe3e5b2f67227a578b7c26a" +
  "cf6047223182a8fc36c50d510a36141c6a111bfbb8bec4b25acadb42d966b539214188b348e41a11e382281f5725034ab886" +
  "873abe960dea479bc1c31a65e14d8caac79cc209b13b5f8003b68e5645a629ba4a491f5bf46ec4816c15cc805401808e3946" +
  "2df8ae752b0fc7ac739439b5a70a8056504c4220c6803868510c8f47e90b17e8bb41768236c23f5f1136d66c83f645938481" +
  "4c4f7142faa6b7c2141d2511327ac2cb45ec8a745ab3d4e8c97cd9ccbd11579ab73bd205b7f6cb99cb1b1482c2a7c0555890" +
  "09798e8756dac3a83ea177364c2d36e2a5cb61bcb62c86e595a30a116f6370abdf7ba2339975b471a749bb6da4a61caa426f" +
  "84b222865018d1000ae36b8a20496ab07a83020742db74667d749f79dc78e929142e932545568367c6543ec3107ef6b2bd47" +
  "3a15977ad3b7268b84af60a62920935127495caeb91f9164c81041a46ae9074098740966474e2506e2124d4a499bb2d23a9b" +
  "e42ccd146481791bde22b57a5321781994a59b193ca7a1642959180c5d0c47ba7a456e90a3c4b25a0efb1ba80ff0092c9a8e" +
  "2720233802b206e2a591f9a8fa2a17c2d16970252a449c31d9964692f9acf1ca43cb396be081953ddc79999a6d0432c95d24" +
  "9781d78c3cf681bdd3000ab7aa71b721004c13243867674088f1e47bee4533890722038a7e09904ac9a4c145b30135fc8fb7" +
  "53c3fcc51ac6551e8210bdd17a956ddaae8ea672470455b742458e482707345f50a7793fabad5a584bee72a5660b87567902" +
  "065c2ddc1bbe598cb6cd2b462d36b43df657040734a281ce4b039668676e9bca4ad9e80ec18b3fe8f7a492285d78c1758929" +
  "367ff0ceb8734fa5076b975025947c0b6eb37917cc393355914024112670655b4c26fa6a6ba739b575a3174626ae2365cd1d" +
  "b8276e3b9ac700c8da75146d7a673951b8fe98478fd153d0b54de715265317ab7c3a91d3593c9f47500fb775b4935da7c331" +
  "f4c323c8189951e890dc791e273965e860bf46d68052f84c5886a1d6931b0fc4abc0601f6b9542aed800be91bc2cc6923375" +
  "3421b4672a97c39df30b126c1ab3c53a73f47f63889cb8e727185a886fd43446c240ca6bc7f4762ce3518838b6a6a081b32c" +
  "a0cb6516529796651d24385a9b7a3013c905262134478e1377983eb83391ea36f3b150cf8874d74315a9c02ce70678d5e900" +
  "7f55918cebafbd2cc62dd471312b1426b2ca953b270c17f5d14f875680b89cba48047f1932fe569ed6b8c9e8dfa937079318" +
  "79859784861697adb7c17b0453e7ef90e5f5871255c077ae91df513c02416b49001d00202ba528eb16e30dfc344c72e149d8" +
  "47a1e8a4aa2bcb4373a554c2a8c4d23e1270002d00020101002b00050403040303";

/** The captured ClientHello (a fresh copy). */
export function capturedHello(): Uint8Array {
  return Uint8Array.from(Buffer.from(CAPTURED_HEX, "hex"));
}

function u16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

/**
 * A well-formed ClientHello whose handshake message is `size` bytes (header included): a padding
 * extension fills it, and the server_name extension comes last, so a reader finds the name only with
 * the very last byte. Split into records of at most 16384 bytes.
 *
 * @example
 * craftedHello(65_500, "alt.example"); // 4 records, 65,520 bytes on the wire
 */
export function craftedHello(size: number, serverName: string | undefined): Uint8Array {
  const name = Buffer.from(serverName ?? "", "latin1");
  const sni =
    serverName === undefined
      ? []
      : [0x00, 0x00, ...u16(name.length + 5), ...u16(name.length + 3), 0x00, ...u16(name.length), ...name];
  const head = [0x03, 0x03, ...new Array<number>(32).fill(7), 0x00, ...u16(2), 0x13, 0x01, 0x01, 0x00];
  // handshake header (4) + head + extensions length (2) + padding extension header (4) + sni
  const padding = size - 4 - head.length - 2 - 4 - sni.length;
  if (padding < 0 || padding > 0xffff) throw new RangeError(`no ClientHello of ${size} bytes`);
  const extensions = [0x00, 0x15, ...u16(padding)];
  const bodyLength = head.length + 2 + 4 + padding + sni.length;
  const message = new Uint8Array(4 + bodyLength);
  message.set([0x01, (bodyLength >> 16) & 0xff, (bodyLength >> 8) & 0xff, bodyLength & 0xff], 0);
  message.set([...head, ...u16(4 + padding + sni.length), ...extensions], 4);
  message.set(sni, 4 + head.length + 2 + 4 + padding);
  return records(message);
}

/** `message` split into handshake records of at most `max` bytes each. */
export function records(message: Uint8Array, max = 16384): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let at = 0; at < message.length; at += max) {
    const fragment = message.subarray(at, Math.min(at + max, message.length));
    parts.push(Uint8Array.of(0x16, 0x03, 0x01, ...u16(fragment.length)), fragment);
  }
  return Buffer.concat(parts);
}
