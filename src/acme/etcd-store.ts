import { X509Certificate } from 'node:crypto';
import { EtcdLockFailedError, type Etcd3, type Lease, type Watcher } from 'etcd3';
import { open, seal, SealError, type SealedKey } from './sealed.js';
import type { AcmeStore, SharedChallenge, StoreEvents, StoredCertificate } from './store.js';

/** Lifetime of the ordering lock when its holder stops renewing it (dies, or loses etcd). */
const LOCK_TTL_SECONDS = 15;
/** How long a node waits for another node's order before giving up (its own order is then retried later). */
const LOCK_WAIT_MS = 180_000;
const LOCK_POLL_MS = 500;
/** Lifetime of a shared challenge when its node stops renewing it (an order never waits this long for validation). */
const CHALLENGE_TTL_SECONDS = 120;

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
 * with its lease). Every node watches `<prefix>certs/`, and answers the
 * challenges the ordering node publishes under `<prefix>acme/challenges/`
 * (the CA may validate on any node behind the name; they are held under a
 * lease so a dead node's challenges vanish). The store owns its client.
 */
export class EtcdAcmeStore implements AcmeStore {
  readonly where: string;
  readonly #client: Etcd3;
  readonly #prefix: string;
  readonly #key: Buffer;
  readonly #node: string;
  readonly #watchers: Watcher[] = [];
  readonly #challengeLeases = new Map<string, Lease>();

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
        if (!(err instanceof EtcdLockFailedError)) throw err;
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

  async shareChallenge(change: SharedChallenge): Promise<void> {
    const key = change.kind === 'http' ? `${this.#prefix}acme/challenges/http/${change.token}` : `${this.#prefix}acme/challenges/alpn/${change.name}`;
    const withdrawn = change.kind === 'http' ? change.keyAuthorization === null : change.pem === null;
    if (withdrawn) {
      const lease = this.#challengeLeases.get(key);
      this.#challengeLeases.delete(key);
      await (lease === undefined ? this.#client.delete().key(key).then(() => undefined) : lease.revoke());
      return;
    }
    const value =
      change.kind === 'http'
        ? { keyAuthorization: change.keyAuthorization }
        : { cert: change.pem?.cert, key: seal(this.#key, `challenge:${change.name}`, change.pem?.key ?? '') };
    const lease = this.#client.lease(CHALLENGE_TTL_SECONDS, { autoKeepAlive: true });
    lease.on('lost', () => this.#challengeLeases.delete(key));
    this.#challengeLeases.set(key, lease);
    await lease.put(key).value(JSON.stringify(value));
  }

  async watch(events: StoreEvents): Promise<void> {
    const certs = `${this.#prefix}certs/`;
    const certWatcher = await this.#client.watch().prefix(certs).create();
    this.#watchers.push(certWatcher);
    certWatcher.on('put', (kv) => events.certificate(kv.key.toString().slice(certs.length)));
    const challenges = `${this.#prefix}acme/challenges/`;
    const challengeWatcher = await this.#client.watch().prefix(challenges).create();
    this.#watchers.push(challengeWatcher);
    challengeWatcher.on('put', (kv) => {
      const change = this.#challenge(kv.key.toString().slice(challenges.length), kv.value.toString());
      if (change !== null) events.challenge(change);
    });
    challengeWatcher.on('delete', (kv) => {
      const change = this.#challenge(kv.key.toString().slice(challenges.length), null);
      if (change !== null) events.challenge(change);
    });
  }

  /** A shared challenge from its key (below the challenges prefix) and value (null: deleted); null when it is not one. */
  #challenge(path: string, text: string | null): SharedChallenge | null {
    const slash = path.indexOf('/');
    const kind = path.slice(0, slash);
    const id = path.slice(slash + 1);
    try {
      const value = text === null ? null : parse(path, text);
      if (kind === 'http') return { kind, token: id, keyAuthorization: value === null ? null : String(value.keyAuthorization) };
      if (kind !== 'alpn') return null;
      if (value === null) return { kind, name: id, pem: null };
      if (typeof value.cert !== 'string' || !isSealed(value.key)) return null;
      return { kind, name: id, pem: { cert: value.cert, key: open(this.#key, `challenge:${id}`, value.key) } };
    } catch {
      // A challenge this node cannot read is one it cannot answer; the ordering node's own listeners still do.
      return null;
    }
  }

  async close(): Promise<void> {
    for (const watcher of this.#watchers) await watcher.cancel().catch(() => undefined);
    for (const lease of this.#challengeLeases.values()) await lease.revoke().catch(() => undefined);
    this.#client.close();
  }
}
