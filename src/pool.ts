/**
 * Connector pools: the {@link Pool} (src/pool/pool.ts), its request router (src/pool/router.ts) and
 * {@link startConnectorPool} (src/pool/start.ts). Importers of this module keep finding them here.
 *
 * @module
 */
export { Pool, type PoolInfo, type PoolReadyOptions } from "./pool/pool.ts";
export type { PoolStrategy } from "./pool/router.ts";
export { startConnectorPool } from "./pool/start.ts";
