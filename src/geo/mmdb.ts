import { readFile } from 'node:fs/promises';
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import { stat as fsStat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Reader, type Response } from 'maxmind';
import type { Logger } from '../observability/logger.js';

/** How often the database file is checked for a replacement. */
const POLL_MS = 1_000;

/** What the admin state shows about the database. */
export interface GeoDatabaseState {
  readonly path: string;
  readonly databaseType: string;
  readonly ipVersion: number;
  readonly builtAt: string;
  readonly loadedAt: string;
  readonly reloads: number;
  /** Why the last reload failed (the previous database stays in use), or null. */
  readonly error: string | null;
}

/** A database and the file version it was read from. */
interface Loaded {
  readonly reader: Reader<Response>;
  readonly stat: Stats;
}

async function load(path: string): Promise<Loaded> {
  // Stat first: a replacement landing during the read is then seen as a change.
  const stat = await fsStat(path);
  const bytes = await readFile(path);
  // The Reader parses the metadata at the end of the file, so a truncated or
  // half-written file fails here rather than at lookup time.
  const reader = new Reader<Response>(bytes);
  const m = reader.metadata;
  if (m.ipVersion !== 4 && m.ipVersion !== 6) throw new Error(`metadata ip_version is ${m.ipVersion}, not 4 or 6`);
  if (!Number.isFinite(m.buildEpoch.getTime())) throw new Error('metadata build_epoch is not a valid time');
  return { reader, stat };
}

function sameFile(a: Stats, b: Stats): boolean {
  return a.mtimeMs === b.mtimeMs && a.ino === b.ino && a.size === b.size;
}

/**
 * A MaxMind-format database file read through the `maxmind` package, reloaded
 * when the file changes. A replacement that does not parse is refused and the
 * database in use stays. (maxmind's own `watchForUpdates` would throw from its
 * watcher on such a file, and reads it while it may still be being written.)
 */
export class GeoDatabase {
  readonly path: string;
  #reader: Reader<Response>;
  #stat: Stats;
  #loadedAt = new Date();
  #reloads = 0;
  #error: string | null = null;
  #reloading: Promise<void> = Promise.resolve();
  readonly #onReload: () => void;
  readonly #logger: Logger;
  #listener: ((now: Stats) => void) | null = null;

  private constructor(path: string, loaded: Loaded, logger: Logger, onReload: () => void) {
    this.path = path;
    this.#reader = loaded.reader;
    this.#stat = loaded.stat;
    this.#logger = logger;
    this.#onReload = onReload;
  }

  /** Opens the file; rejects with a readable message when it is missing or not a MaxMind DB. */
  static async open(path: string, logger: Logger, onReload: () => void): Promise<GeoDatabase> {
    const full = resolve(path);
    let loaded: Loaded;
    try {
      loaded = await load(full);
    } catch (err) {
      throw new Error(`cannot read ${full} as a MaxMind DB: ${(err as Error).message}`);
    }
    return new GeoDatabase(full, loaded, logger, onReload);
  }

  /** The record of the network holding the address (null when none) and that network's prefix length. */
  lookup(address: string): { record: Response | null; prefixLength: number } {
    // An IPv4-only tree would read the first 32 bits of an IPv6 address as IPv4.
    if (this.#reader.metadata.ipVersion === 4 && address.includes(':')) return { record: null, prefixLength: 0 };
    try {
      const [record, prefixLength] = this.#reader.getWithPrefixLength(address);
      return { record, prefixLength };
    } catch (err) {
      // A corrupt data section surfaces only on the lookup that reaches it.
      this.#logger.warn({ err: (err as Error).message, path: this.path, address }, 'geo database lookup failed');
      return { record: null, prefixLength: 0 };
    }
  }

  /** Starts polling the file; a changed file is loaded and swapped in whole. */
  watch(): void {
    this.#listener = (now: Stats): void => {
      // Compared with the version in use, not the previous poll: a change between load and watch counts.
      if (now.nlink === 0 || sameFile(now, this.#stat)) return; // unchanged, or removed: keep what we have
      this.#reloading = this.#reloading.then(() => this.#reload());
    };
    watchFile(this.path, { interval: POLL_MS, persistent: false }, this.#listener);
  }

  async #reload(): Promise<void> {
    let loaded: Loaded;
    try {
      loaded = await load(this.path);
      if (sameFile(loaded.stat, this.#stat)) return; // several polls saw one change
    } catch (err) {
      this.#error = (err as Error).message;
      this.#logger.error({ err: this.#error, path: this.path }, 'geo database changed but does not load; keeping the one in use');
      return;
    }
    this.#reader = loaded.reader;
    this.#stat = loaded.stat;
    this.#loadedAt = new Date();
    this.#reloads++;
    this.#error = null;
    this.#onReload();
    this.#logger.info({ path: this.path, databaseType: this.#reader.metadata.databaseType, builtAt: this.#reader.metadata.buildEpoch.toISOString() }, 'geo database reloaded');
  }

  /** The database as the admin state shows it. */
  state(): GeoDatabaseState {
    const m = this.#reader.metadata;
    return {
      path: this.path,
      databaseType: m.databaseType,
      ipVersion: m.ipVersion,
      builtAt: m.buildEpoch.toISOString(),
      loadedAt: this.#loadedAt.toISOString(),
      reloads: this.#reloads,
      error: this.#error,
    };
  }

  /** Stops polling (a reload in progress finishes). */
  async close(): Promise<void> {
    if (this.#listener !== null) unwatchFile(this.path, this.#listener);
    this.#listener = null;
    await this.#reloading;
  }
}
