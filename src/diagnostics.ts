/**
 * `node:diagnostics_channel` channels the library publishes on (as undici and Node's `net` do), for
 * metrics and tracing tools. Publishing is guarded by `hasSubscribers`, so a channel nobody listens to
 * costs one property read per event and builds no message.
 *
 * | channel | message |
 * |---|---|
 * | `sockerl:connection:start` | `{ connection, server?, pool? }`: `init` completed |
 * | `sockerl:connection:exit` | `{ connection, reason, peerFault }`: a started connection ended |
 * | `sockerl:server:listen` | `{ server, port, hostname, transport }` |
 * | `sockerl:server:stop` | `{ server, reason }` |
 * | `sockerl:pool:connector:up` | `{ pool, connection, id }`: a pool's connector is live |
 * | `sockerl:pool:connector:down` | `{ pool, connection, id, reason }`: it left (exit or lost socket) |
 *
 * @example
 * import diagnostics from "node:diagnostics_channel";
 * diagnostics.subscribe("sockerl:connection:exit", (message) => console.log(message));
 *
 * @module
 */
import diagnostics from "node:diagnostics_channel";

/** `sockerl:connection:start`: `{ connection, server?, pool? }`. */
export const connectionStartChannel = diagnostics.channel("sockerl:connection:start");
/** `sockerl:connection:exit`: `{ connection, reason, peerFault }`. */
export const connectionExitChannel = diagnostics.channel("sockerl:connection:exit");
/** `sockerl:server:listen`: `{ server, port, hostname, transport }`. */
export const serverListenChannel = diagnostics.channel("sockerl:server:listen");
/** `sockerl:server:stop`: `{ server, reason }`. */
export const serverStopChannel = diagnostics.channel("sockerl:server:stop");
/** `sockerl:pool:connector:up`: `{ pool, connection, id }`. */
export const connectorUpChannel = diagnostics.channel("sockerl:pool:connector:up");
/** `sockerl:pool:connector:down`: `{ pool, connection, id, reason }`. */
export const connectorDownChannel = diagnostics.channel("sockerl:pool:connector:down");
