import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { DocumentDecoder } from '../config/routing-lines.js';
import type { RoutingParser } from '../config/routing-parser.js';
import type { Logger } from '../observability/logger.js';
import type { ProviderDocument, ProviderUpdate } from './provider.js';

/** How long a file must keep the same size and times before it is read: editors and tools write in several steps. */
const SETTLE_MS = 25;
/** A file still changing after this long is read anyway (a log-like file that never settles must not block reloads). */
const MAX_SETTLE_MS = 2_000;
/** Fallback poll for filesystems where change events do not arrive (network mounts, some containers). */
const POLL_MS = 2_000;
/** Larger files are refused before parsing: a routing table of tens of thousands of objects is a few MiB. */
export const MAX_FILE_BYTES = 64 * 1024 * 1024;

/** A file's identity and version as stat shows them; 'missing' when it cannot be stat'ed. */
async function version(path: string): Promise<string> {
  try {
    const s = await stat(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
  } catch {
    return 'missing';
  }
}

/**
 * The embedded routing-table store: one YAML or JSON file, watched. Emits whole
 * versions of the file, never patches, each with the digest of its bytes; a
 * change is read only once the file has stopped changing. Parsing and
 * validation run on the parser's thread, when a version is read. Watches the directory, so
 * editors that save by rename and symlink swaps (Kubernetes ConfigMaps) are seen too.
 */
export class FileStore {
  readonly path: string;
  readonly #logger: Logger;
  readonly #parser: RoutingParser;
  readonly #decoder = new DocumentDecoder();
  /** The version of the file last read. */
  #readVersion: string | null = null;
  /** The version seen by the previous look while waiting for the file to settle, and since when it has been changing. */
  #settling: { version: string; since: number } | null = null;
  #watcher: FSWatcher | null = null;
  #poll: NodeJS.Timeout | null = null;
  #settle: NodeJS.Timeout | null = null;
  #reading: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(path: string, logger: Logger, parser: RoutingParser) {
    this.path = path;
    this.#logger = logger;
    this.#parser = parser;
  }

  /** Reads the file's bytes now: a version whose digest is theirs, parsed and validated when read. */
  async read(): Promise<ProviderUpdate> {
    this.#readVersion = await version(this.path);
    let text: string;
    try {
      const size = (await stat(this.path)).size;
      if (size > MAX_FILE_BYTES) return this.#unreadable(`larger than ${MAX_FILE_BYTES / 1024 / 1024} MiB (${size} bytes)`);
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      return this.#unreadable(`cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    return { digest: createHash('sha256').update(text).digest('base64'), read: () => this.#parse(text) };
  }

  /** Starts watching; `onChange` gets every version the file settles on, one at a time. */
  watch(onChange: (update: ProviderUpdate) => unknown): void {
    if (this.#closed) return;
    const name = basename(this.path);
    try {
      this.#watcher = watch(dirname(this.path), (_event, file) => {
        if (file === null || file === name || file.startsWith('..')) this.#schedule(onChange);
      });
      this.#watcher.on('error', (err) => this.#logger.warn({ err: err.message, file: this.path }, 'file watch failed; polling only'));
    } catch (err) {
      this.#logger.warn({ err: (err as Error).message, file: this.path }, 'cannot watch routes file; polling only');
    }
    this.#poll = setInterval(() => this.#look(onChange), POLL_MS);
    this.#poll.unref();
  }

  /** Stops watching. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#watcher?.close();
    if (this.#poll !== null) clearInterval(this.#poll);
    if (this.#settle !== null) clearTimeout(this.#settle);
    await this.#reading;
  }

  async #parse(text: string): Promise<ProviderDocument> {
    const parsed = await this.#parser.parse(text, this.path);
    if (!parsed.ok) return { ok: false, issues: parsed.issues };
    const rawJson = parsed.rawJson;
    return { ok: true, doc: await this.#decoder.decode(parsed.encoded), rawJson: () => rawJson };
  }

  #unreadable(message: string): ProviderUpdate {
    const document: ProviderDocument = { ok: false, issues: [{ path: this.path, message, reason: 'unreadable' }] };
    return { digest: `unreadable: ${message}`, read: () => Promise.resolve(document) };
  }

  #schedule(onChange: (update: ProviderUpdate) => unknown): void {
    if (this.#closed) return;
    if (this.#settle !== null) clearTimeout(this.#settle);
    this.#settle = setTimeout(() => this.#look(onChange), SETTLE_MS);
  }

  /**
   * One look at the file: read it only when its version is the same as at the
   * previous look (it has settled) and differs from the version last read.
   */
  #look(onChange: (update: ProviderUpdate) => unknown): void {
    this.#reading = this.#reading
      .then(async () => {
        if (this.#closed) return;
        const now = await version(this.path);
        const settling = this.#settling;
        if (now === this.#readVersion && settling === null) return;
        if (settling === null || (settling.version !== now && Date.now() - settling.since < MAX_SETTLE_MS)) {
          this.#settling = { version: now, since: settling?.since ?? Date.now() };
          this.#schedule(onChange);
          return;
        }
        this.#settling = null;
        // Not awaited: the watcher takes versions one at a time and reads only the newest waiting.
        void onChange(await this.read());
      })
      .catch((err: Error) => this.#logger.error({ err: err.message, file: this.path }, 'routes file change could not be handled; the table in force stays'));
  }
}
