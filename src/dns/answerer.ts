import type { Transport } from './dns-metrics.js';

/** Turns one query message from a peer into its answer (null: nothing to send), now or later. */
export type Answerer = (query: Buffer, peer: string, transport: Transport) => Buffer | null | Promise<Buffer | null>;
