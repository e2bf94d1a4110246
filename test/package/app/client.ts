/** A plain Bun TCP client for the consumer app: sends one line and resolves with the first reply. */
export function lineClient(port: number, line: string): Promise<string> {
  const { promise, resolve, reject } = Promise.withResolvers<string>();
  Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      open: (socket) => {
        socket.write(line);
      },
      data: (socket, data) => {
        resolve(data.toString());
        socket.end();
      },
      error: (_socket, error) => reject(error),
    },
  }).catch(reject);
  return promise;
}
