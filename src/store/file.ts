import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { parseConfigText } from '../config/document.js';
import { ConfigError } from '../config/issues.js';
import type { Logger } from '../observability/logger.js';

/** Coalesces the several events an editor's save produces into one read. */
const SETTLE_MS = 25;
/** Fallback poll for filesystems where change events do not arrive (network mounts, some containers). */
const POLL_MS = 2_000;

/** What a file store emits: a whole parsed document, or the reason there is none. */
export type FileSnapshot = { readonly ok: true; readonly document: unknown } | { readonly ok: false; readonly error: ConfigError };

/**
 * The embedded routing-table store: one YAML or JSON file, watched. Emits whole
 * documents, never patches; a save that leaves the bytes unchanged emits nothing.
 * Watches the directory, so editors that save by rename and symlink swaps
 * (Kubernetes ConfigMaps) are seen too.
 */
export class FileStore {
  readonly path: string;
  readonly #logger: Logger;
  #lastText: string | null = null;
  #watcher: FSWatcher | null = null;
  #poll: NodeJS.Timeout | null = null;
  #settle: NodeJS.Timeout | null = null;
  #reading: Promise<void> = Promise.resolve();

  constructor(path: string, logger: Logger) {
    this.path = path;
    this.#logger = logger;
  }

  /** Reads and parses the file now. */
  async read(): Promise<FileSnapshot> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      this.#lastText = null;
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      return { ok: false, error: new ConfigError([{ path: this.path, message: `cannot read: ${code}` }]) };
    }
    this.#lastText = text;
    try {
      return { ok: true, document: parseConfigText(text, this.path) };
    } catch (err) {
      if (err instanceof ConfigError) return { ok: false, error: err };
      throw err;
    }
  }

  /** Starts watching; `onChange` gets every changed document (or its parse error), one at a time. */
  watch(onChange: (snapshot: FileSnapshot) => void | Promise<void>): void {
    const check = (): void => {
      this.#reading = this.#reading.then(async () => {
        let text: string | null;
        try {
          text = await readFile(this.path, 'utf8');
        } catch {
          text = null;
        }
        if (text === this.#lastText) return;
        await onChange(await this.read());
      });
    };
    const schedule = (): void => {
      if (this.#settle !== null) clearTimeout(this.#settle);
      this.#settle = setTimeout(check, SETTLE_MS);
    };
    const name = basename(this.path);
    try {
      this.#watcher = watch(dirname(this.path), (_event, file) => {
        if (file === null || file === name || file.startsWith('..')) schedule();
      });
      this.#watcher.on('error', (err) => this.#logger.warn({ err: err.message, file: this.path }, 'file watch failed; polling only'));
    } catch (err) {
      this.#logger.warn({ err: (err as Error).message, file: this.path }, 'cannot watch routes file; polling only');
    }
    this.#poll = setInterval(check, POLL_MS);
    this.#poll.unref();
  }

  /** Stops watching. */
  async close(): Promise<void> {
    this.#watcher?.close();
    if (this.#poll !== null) clearInterval(this.#poll);
    if (this.#settle !== null) clearTimeout(this.#settle);
    await this.#reading;
  }
}
