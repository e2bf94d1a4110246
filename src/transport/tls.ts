/**
 * The TLS transport's public names, re-exported from `tls/` where they live: `transport.ts` (`tls()`),
 * `options.ts` (`TlsOptions`, `encodeAlpn`), `client-hello.ts` (`readServerName`) and `sni-listener.ts`.
 * Importers of this module keep working.
 *
 * @module
 */
export { readServerName } from "./tls/client-hello.ts";
export {
  encodeAlpn,
  type Pem,
  type TlsCertificate,
  type TlsOptions,
  type TlsVersion,
} from "./tls/options.ts";
export { tls } from "./tls/transport.ts";
