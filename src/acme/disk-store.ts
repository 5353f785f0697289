import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AcmeStore, StoredCertificate } from './store.js';

/** Reads a file, or null when it does not exist. */
async function readOrNull(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Writes a file whole or not at all (a crash never leaves half a key), readable by the owner only when `secret`. */
async function writeAtomically(path: string, text: string, secret: boolean): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, text, { mode: secret ? 0o600 : 0o644 });
  await rename(temp, path);
}

/**
 * A lone node's ACME files in one directory: `account.key`, and per name
 * `certs/<name>.crt` (chain) and `certs/<name>.key`. Keys are written with
 * mode 0600. Read at start, so a restart serves what it has and orders nothing.
 */
export class DiskAcmeStore implements AcmeStore {
  readonly where: string;

  constructor(dir: string) {
    this.where = dir;
  }

  async loadAccount(): Promise<string | null> {
    return readOrNull(join(this.where, 'account.key'));
  }

  async saveAccount(keyPem: string): Promise<void> {
    await mkdir(this.where, { recursive: true, mode: 0o700 });
    await writeAtomically(join(this.where, 'account.key'), keyPem, true);
  }

  async load(name: string): Promise<StoredCertificate | null> {
    const cert = await readOrNull(join(this.where, 'certs', `${name}.crt`));
    const key = await readOrNull(join(this.where, 'certs', `${name}.key`));
    return cert === null || key === null ? null : { cert, key };
  }

  async save(name: string, stored: StoredCertificate): Promise<void> {
    const dir = join(this.where, 'certs');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // The key first: a certificate on disk always has its key beside it.
    await writeAtomically(join(dir, `${name}.key`), stored.key, true);
    await writeAtomically(join(dir, `${name}.crt`), stored.cert, false);
  }

  exclusive<T>(work: () => Promise<T>): Promise<T> {
    return work();
  }

  async shareChallenge(): Promise<void> {
    // Only this node's listeners answer.
  }

  async watch(): Promise<void> {
    // Nobody else writes here.
  }

  async close(): Promise<void> {
    // Nothing held open.
  }
}
