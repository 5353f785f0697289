import { X509Certificate } from 'node:crypto';
import type { Etcd3, Watcher } from 'etcd3';
import { open, seal, SealError, type SealedKey } from './sealed.js';
import type { AcmeStore, StoredCertificate } from './store.js';

/** Lifetime of the ordering lock when its holder stops renewing it (dies, or loses etcd). */
const LOCK_TTL_SECONDS = 15;
/** How long a node waits for another node's order before giving up (its own order is then retried later). */
const LOCK_WAIT_MS = 180_000;
const LOCK_POLL_MS = 500;

/** What `<prefix>certs/<name>` holds. */
interface CertValue {
  readonly name: string;
  readonly cert: string;
  readonly key: SealedKey;
  readonly notAfter: string;
  /** The node that ordered it. */
  readonly node: string;
}

/** Whether a value read from etcd looks like a sealed key. */
function isSealed(value: unknown): value is SealedKey {
  const v = value as Partial<SealedKey> | null;
  return typeof v === 'object' && v !== null && v.alg === 'aes-256-gcm' && typeof v.iv === 'string' && typeof v.tag === 'string' && typeof v.data === 'string';
}

/** Parses a JSON value of `key`, throwing an error that names the key. */
function parse(key: string, text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // Reported below with the key's name.
  }
  throw new SealError(`${key} is not a JSON object`);
}

/**
 * The fleet's ACME account and certificates in etcd, shared by every node:
 * `<prefix>acme/account` and `<prefix>certs/<name>` (JSON; private keys
 * sealed with the configured key, see sealed.ts). One node orders at a time,
 * under a lease-held lock at `<prefix>acme/lock` (a dead node's lock expires
 * with its lease). Every node watches `<prefix>certs/`. The store owns its
 * client and closes it.
 */
export class EtcdAcmeStore implements AcmeStore {
  readonly where: string;
  readonly #client: Etcd3;
  readonly #prefix: string;
  readonly #key: Buffer;
  readonly #node: string;
  #watcher: Watcher | null = null;

  constructor(client: Etcd3, prefix: string, encryptionKey: Buffer, node: string) {
    this.#client = client;
    this.#prefix = prefix;
    this.#key = encryptionKey;
    this.#node = node;
    this.where = `etcd:${prefix}certs/`;
  }

  async loadAccount(): Promise<string | null> {
    const key = `${this.#prefix}acme/account`;
    const text = await this.#client.get(key).string();
    if (text === null) return null;
    const value = parse(key, text);
    if (!isSealed(value.key)) throw new SealError(`${key} holds no sealed key`);
    return open(this.#key, 'account', value.key);
  }

  async saveAccount(keyPem: string): Promise<void> {
    await this.#client.put(`${this.#prefix}acme/account`).value(JSON.stringify({ key: seal(this.#key, 'account', keyPem), node: this.#node }));
  }

  async load(name: string): Promise<StoredCertificate | null> {
    const key = `${this.#prefix}certs/${name}`;
    const text = await this.#client.get(key).string();
    if (text === null) return null;
    const value = parse(key, text);
    if (typeof value.cert !== 'string' || !isSealed(value.key)) throw new SealError(`${key} needs "cert" (PEM) and a sealed "key"`);
    return { cert: value.cert, key: open(this.#key, name, value.key) };
  }

  async save(name: string, stored: StoredCertificate): Promise<void> {
    const notAfter = new Date(new X509Certificate(stored.cert).validTo).toISOString();
    const value: CertValue = { name, cert: stored.cert, key: seal(this.#key, name, stored.key), notAfter, node: this.#node };
    await this.#client.put(`${this.#prefix}certs/${name}`).value(JSON.stringify(value));
  }

  async exclusive<T>(work: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      const lock = this.#client.lock(`${this.#prefix}acme/lock`).ttl(LOCK_TTL_SECONDS);
      try {
        await lock.acquire();
      } catch (err) {
        if ((err as Error).name !== 'EtcdLockFailedError') throw err;
        if (Date.now() > deadline) throw new Error(`another node has held the ACME lock ${this.#prefix}acme/lock for ${LOCK_WAIT_MS / 1000} s`);
        await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
        continue;
      }
      try {
        return await work();
      } finally {
        await lock.release().catch(() => undefined);
      }
    }
  }

  async watch(onChange: (name: string) => void): Promise<void> {
    const base = `${this.#prefix}certs/`;
    this.#watcher = await this.#client.watch().prefix(base).create();
    this.#watcher.on('put', (kv) => onChange(kv.key.toString().slice(base.length)));
  }

  async close(): Promise<void> {
    await this.#watcher?.cancel().catch(() => undefined);
    this.#client.close();
  }
}
