import type { Etcd3, IWatchResponse, Watcher } from 'etcd3';
import type { ConfigIssue } from '../config/issues.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { EtcdKeyState, type KeyChange } from './etcd-keys.js';

/** A whole routing document assembled from etcd at one revision. */
export interface EtcdSnapshot {
  readonly revision: number;
  readonly document: unknown;
  /** Keys whose current value is rejected (their last valid version is in the document). */
  readonly keyIssues: readonly ConfigIssue[];
}

/** Connection state shown in the admin state and metrics. */
export type EtcdState = 'connecting' | 'connected' | 'disconnected';

const BACKOFF_MIN_MS = 100;
/** A watch cancel waits for etcd's answer; a dead connection never gives one. */
const CANCEL_TIMEOUT_MS = 1_000;

/** Cancels a watcher, giving up on etcd's acknowledgement after `ms`. */
async function cancelWithin(watcher: Watcher, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([watcher.cancel().catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
const BACKOFF_MAX_MS = 5_000;

/**
 * The etcd store: lists the prefix at revision R and emits the whole document,
 * then watches from R+1 and emits a new document after each watch response (the
 * events of one etcd transaction arrive together, so a transaction is never
 * half applied). When the watch is cancelled (compaction, or a gap etcd cannot
 * replay) it lists again; while etcd is away it retries with backoff.
 */
export class EtcdStore {
  readonly #client: Etcd3;
  readonly #keys: EtcdKeyState;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  #state: EtcdState = 'connecting';
  #revision = 0;
  #closed = false;
  #watcher: Watcher | null = null;
  #wake: (() => void) | null = null;
  /** Health views published by the fleet's nodes, by node name. */
  readonly #nodes = new Map<string, unknown>();

  constructor(client: Etcd3, prefix: string, logger: Logger, metrics: Metrics) {
    this.#client = client;
    this.#keys = new EtcdKeyState(prefix);
    this.#logger = logger;
    this.#metrics = metrics;
  }

  /** The etcd revision of the last snapshot emitted; 0 before the first. */
  get revision(): number {
    return this.#revision;
  }

  get state(): EtcdState {
    return this.#state;
  }

  /** The fleet: every live node's published health view, by node name. */
  fleet(): Record<string, unknown> {
    return Object.fromEntries(this.#nodes);
  }

  /** Keeps node views (`<prefix>nodes/<node>`) aside from routing keys. */
  #noteNodes(changes: readonly KeyChange[]): void {
    const base = `${this.#keys.prefix}nodes/`;
    for (const change of changes) {
      if (!change.key.startsWith(base)) continue;
      const node = change.key.slice(base.length);
      if (change.value === null) {
        this.#nodes.delete(node);
        continue;
      }
      try {
        this.#nodes.set(node, JSON.parse(change.value));
      } catch {
        this.#nodes.set(node, { invalid: change.value });
      }
    }
  }

  /** Runs list-then-watch until close(), handing every snapshot to `onSnapshot`. */
  run(onSnapshot: (snapshot: EtcdSnapshot) => void): void {
    void this.#loop(onSnapshot);
  }

  /** Stops watching and closes the client. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#wake?.();
    const watcher = this.#watcher;
    this.#watcher = null;
    if (watcher !== null) await cancelWithin(watcher, CANCEL_TIMEOUT_MS);
    this.#client.close();
  }

  async #loop(onSnapshot: (snapshot: EtcdSnapshot) => void): Promise<void> {
    let backoff = BACKOFF_MIN_MS;
    while (!this.#closed) {
      try {
        const listed = await this.#client.getAll().prefix(this.#keys.prefix).exec();
        if (this.#closed) return;
        this.#keys.clear();
        this.#nodes.clear();
        const all = listed.kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString() }));
        this.#keys.update(all);
        this.#noteNodes(all);
        this.#revision = Number(listed.header.revision);
        this.#setState('connected');
        backoff = BACKOFF_MIN_MS;
        this.#emit(onSnapshot);
        await this.#watch(this.#revision + 1, onSnapshot);
      } catch (err) {
        if (this.#closed) return;
        this.#setState('disconnected', (err as Error).message);
        await this.#sleep(backoff);
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      }
    }
  }

  /** Watches from `from`; resolves when the watch ends and the prefix must be listed again. */
  async #watch(from: number, onSnapshot: (snapshot: EtcdSnapshot) => void): Promise<void> {
    // Listeners go on before the watch is attached, so a connection lost while it is being created is seen.
    const watcher = this.#client.watch().prefix(this.#keys.prefix).startRevision(String(from)).watcher();
    this.#watcher = watcher;
    await new Promise<void>((resolve) => {
      if (this.#closed) {
        resolve();
        return;
      }
      this.#wake = resolve;
      watcher.on('data', (res: IWatchResponse) => {
        const changes: KeyChange[] = res.events.map((e) => ({ key: e.kv.key.toString(), value: e.type === 'Delete' ? null : e.kv.value.toString() }));
        const touched = this.#keys.update(changes);
        this.#noteNodes(changes);
        this.#revision = Math.max(this.#revision, Number(res.header.revision));
        if (touched) this.#emit(onSnapshot);
      });
      watcher.on('disconnected', (err: Error) => this.#setState('disconnected', err.message));
      watcher.on('connected', () => this.#setState('connected'));
      watcher.on('error', (err: Error) => {
        this.#logger.warn({ err: err.message, revision: this.#revision }, 'etcd watch cancelled; listing again');
        resolve();
      });
      watcher.on('end', () => resolve());
    });
    this.#wake = null;
    if (this.#watcher === watcher) {
      this.#watcher = null;
      await cancelWithin(watcher, CANCEL_TIMEOUT_MS);
    }
  }

  #emit(onSnapshot: (snapshot: EtcdSnapshot) => void): void {
    const keyIssues = this.#keys.issues();
    for (const issue of keyIssues) this.#logger.warn({ key: issue.path, reason: issue.message }, 'etcd key rejected');
    this.#metrics.etcdKeysRejected.set(keyIssues.length);
    onSnapshot({ revision: this.#revision, document: this.#keys.document(), keyIssues });
  }

  #setState(state: EtcdState, reason?: string): void {
    if (state === this.#state) return;
    this.#state = state;
    this.#metrics.etcdConnected.set(state === 'connected' ? 1 : 0);
    if (state === 'connected') this.#logger.info({ revision: this.#revision }, 'etcd connected');
    else this.#logger.warn({ reason }, `etcd ${state}`);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
