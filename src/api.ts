/**
 * SockErl's module functions: each accepts a handle or a registry name (`name` option) and mirrors
 * a `sockerl:*` function. Unknown names reject or throw with {@link NoProcError}.
 *
 * @module
 */
import { ConnectionView } from "./connection/view.ts";
import type { Connection, ExitReason, Outgoing } from "./handler.ts";
import type { AcceptorMode } from "./options.ts";
import { Pool } from "./pool.ts";
import { resolveTarget } from "./registry.ts";
import { Server } from "./server/server.ts";

/** A connection handle or the registry name of a named connector. */
export type ConnectionRef = Connection | string;
/** A server handle or its registry name. */
export type ServerRef = Server | string;
/** A pool handle or its registry name. */
export type PoolRef = Pool | string;

function connection(target: ConnectionRef): Connection {
  return resolveTarget(target, ConnectionView, "connection");
}

function server(target: ServerRef): Server {
  return resolveTarget(target, Server, "server");
}

function pool(target: PoolRef): Pool {
  return resolveTarget(target, Pool, "pool");
}

/** Sends in order with the connection's events; resolves once the bytes are with the kernel (`send_sync`). */
export function sendSync(target: ConnectionRef, packet: Outgoing): Promise<void> {
  try {
    return connection(target).sendSync(packet);
  } catch (error) {
    return Promise.reject(error);
  }
}

/** Sends in order with the connection's events, without waiting (`send_async`). */
export function sendAsync(target: ConnectionRef, packet: Outgoing): void {
  connection(target).sendAsync(packet);
}

/** Stops a connection (`stop_connector`); resolves once `terminate` ran. */
export function stopConnector(target: ConnectionRef, reason: ExitReason = "normal"): Promise<void> {
  try {
    return connection(target).stop(reason);
  } catch (error) {
    return Promise.reject(error);
  }
}

/** `[id, connection]` pairs of a server (`get_server_connections`). */
export function getServerConnections(target: ServerRef): Array<[id: number, connection: Connection]> {
  return server(target).connections();
}

/** `[id, connection]` pairs of a pool's live connectors (`get_pool_connections`). */
export function getPoolConnections(target: PoolRef): Array<[id: number, connection: Connection]> {
  return pool(target).connections();
}

/** Stops a server (`stop_server`). */
export function stopServer(target: ServerRef, reason: ExitReason = "normal"): Promise<void> {
  try {
    return server(target).stop(reason);
  } catch (error) {
    return Promise.reject(error);
  }
}

/** Stops a pool (`stop_pool`). */
export function stopPool(target: PoolRef, reason: ExitReason = "normal"): Promise<void> {
  try {
    return pool(target).stop(reason);
  } catch (error) {
    return Promise.reject(error);
  }
}

/** Puts a server's acceptors to sleep (`sleep_acceptors`). */
export function sleepAcceptors(target: ServerRef): void {
  server(target).sleepAcceptors();
}

/** Wakes a server's acceptors (`wakeup_acceptors`). */
export function wakeupAcceptors(target: ServerRef): void {
  server(target).wakeupAcceptors();
}

/** A server's acceptor modes (`get_acceptor_modes`): one value when all agree. */
export function getAcceptorModes(target: ServerRef): AcceptorMode | Array<[id: number, mode: AcceptorMode]> {
  return server(target).acceptorModes();
}

/** Flips a server's acceptor modes (`change_acceptor_modes`), or `"not_allowed"`. */
export function changeAcceptorModes(target: ServerRef): AcceptorMode | "not_allowed" {
  return server(target).changeAcceptorModes();
}

/** A server's acceptors as `[id, mode]` pairs (`get_acceptors`). */
export function getAcceptors(target: ServerRef): Array<[id: number, mode: AcceptorMode]> {
  return server(target).acceptors();
}

/** Adds a connector to a pool (`add_connector`). */
export function addConnector(target: PoolRef, host: string, port: number): Promise<Connection> {
  try {
    return pool(target).addConnector(host, port);
  } catch (error) {
    return Promise.reject(error);
  }
}
