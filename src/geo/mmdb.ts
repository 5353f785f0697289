import { readFile } from 'node:fs/promises';
import { unwatchFile, watchFile, type Stats } from 'node:fs';
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

async function load(path: string): Promise<Reader<Response>> {
  const bytes = await readFile(path);
  // The Reader parses the metadata at the end of the file, so a truncated or
  // half-written file fails here rather than at lookup time.
  return new Reader<Response>(bytes);
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
  #loadedAt = new Date();
  #reloads = 0;
  #error: string | null = null;
  #reloading: Promise<void> = Promise.resolve();
  readonly #onReload: () => void;
  readonly #logger: Logger;
  #listener: ((now: Stats, before: Stats) => void) | null = null;

  private constructor(path: string, reader: Reader<Response>, logger: Logger, onReload: () => void) {
    this.path = path;
    this.#reader = reader;
    this.#logger = logger;
    this.#onReload = onReload;
  }

  /** Opens the file; rejects with a readable message when it is missing or not a MaxMind DB. */
  static async open(path: string, logger: Logger, onReload: () => void): Promise<GeoDatabase> {
    const full = resolve(path);
    let reader: Reader<Response>;
    try {
      reader = await load(full);
    } catch (err) {
      throw new Error(`cannot read ${full} as a MaxMind DB: ${(err as Error).message}`);
    }
    return new GeoDatabase(full, reader, logger, onReload);
  }

  /** The record of the network holding the address (null when none) and that network's prefix length. */
  lookup(address: string): { record: Response | null; prefixLength: number } {
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
    this.#listener = (now: Stats, before: Stats): void => {
      if (now.mtimeMs === before.mtimeMs && now.ino === before.ino && now.size === before.size) return;
      if (now.nlink === 0) return; // removed: keep what we have until it comes back
      this.#reloading = this.#reloading.then(() => this.#reload());
    };
    watchFile(this.path, { interval: POLL_MS, persistent: false }, this.#listener);
  }

  async #reload(): Promise<void> {
    try {
      this.#reader = await load(this.path);
    } catch (err) {
      this.#error = (err as Error).message;
      this.#logger.error({ err: this.#error, path: this.path }, 'geo database changed but does not load; keeping the one in use');
      return;
    }
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
