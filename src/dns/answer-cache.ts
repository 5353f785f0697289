import { LRUCache } from 'lru-cache';
import type { Origin } from '../geo/origin.js';
import type { RoutingTable } from '../routing/table.js';

/** What a cached answer was built from: it is served only while both are still in force. */
export interface Freshness {
  readonly table: RoutingTable | null;
  readonly healthGeneration: number;
}

interface Entry {
  readonly table: RoutingTable | null;
  readonly healthGeneration: number;
  readonly expiresAt: number;
  /** The answer itself, or one per client origin when it depends on who asks. */
  readonly answer: CachedAnswer | Map<Origin, CachedAnswer>;
}

/** A cached answer ready to send once its id is patched, with what metrics need. */
export interface CachedAnswer {
  readonly bytes: Buffer;
  readonly qtype: string;
  readonly rcode: number;
  readonly truncated: boolean;
}

/** Longest any answer is reused, even when nothing it depends on changed. */
const MAX_AGE_MS = 5_000;
/** Origins remembered per query before that query's map starts over. */
const ORIGINS_PER_QUERY = 256;

/**
 * Authoritative answers by query bytes (all but the id), so a repeated
 * question skips decoding, steering and encoding. An entry is valid only for
 * the routing table and health generation it was built under; answers that
 * depend on the asker's address are kept per client origin.
 */
export class AnswerCache {
  readonly #entries = new LRUCache<string, Entry>({ max: 20_000 });

  /** The cache key of a query: transport (sizes differ) and every byte after the id. */
  static keyOf(query: Buffer, transport: 'udp' | 'tcp'): string {
    return (transport === 'udp' ? 'u' : 't') + query.toString('latin1', 2);
  }

  /** A valid cached answer, or undefined. `origin` is asked for only when the answer depends on it. */
  get(key: string, now: Freshness, origin: () => Origin): CachedAnswer | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.table !== now.table || entry.healthGeneration !== now.healthGeneration || Date.now() >= entry.expiresAt) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.answer instanceof Map ? entry.answer.get(origin()) : entry.answer;
  }

  /** Remembers an answer built under `built`; `origin` is the asker's when the answer depends on it. */
  set(key: string, built: Freshness, answer: CachedAnswer, origin: Origin | null): void {
    let entry = this.#entries.get(key);
    const stale = entry === undefined || entry.table !== built.table || entry.healthGeneration !== built.healthGeneration || !(entry.answer instanceof Map) || origin === null;
    if (stale) {
      entry = {
        table: built.table,
        healthGeneration: built.healthGeneration,
        expiresAt: Date.now() + MAX_AGE_MS,
        answer: origin === null ? answer : new Map<Origin, CachedAnswer>(),
      };
      this.#entries.set(key, entry);
    }
    const answers = (entry as Entry).answer;
    if (answers instanceof Map && origin !== null) {
      if (answers.size >= ORIGINS_PER_QUERY) answers.clear();
      answers.set(origin, answer);
    }
  }

  /** Entries held. */
  get size(): number {
    return this.#entries.size;
  }
}
