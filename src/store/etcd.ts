import type { Etcd3, IWatchResponse, Watcher } from 'etcd3';
import { reasonOf, type ConfigIssue } from '../config/issues.js';
import type { RoutingDocument } from '../config/routing-schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { OutageLog } from '../observability/outage-log.js';
import { EtcdKeyState, type KeyChange, type KeyUpdate } from './etcd-keys.js';

/** The routing objects in force in etcd at one revision. */
export interface EtcdSnapshot {
  /**
   * The revision of the last change to a routing key (the highest mod revision
   * of the keys listed, or of a put or delete seen since): the same on every
   * node for the same keys, unlike etcd's revision, which other keys move too.
   */
  readonly revision: number;
  /** Counts changes of the objects in force: equal generations hold the very same objects. */
  readonly generation: number;
  /** Validated objects; unchanged ones keep their identity from one snapshot to the next. */
  readonly doc: RoutingDocument;
  /** Problems that keep the objects from being a table at all (no routes): apply nothing. */
  readonly issues: readonly ConfigIssue[];
  /** Keys whose value in etcd is held back or refused (what stays is in `doc`). */
  readonly heldBack: readonly ConfigIssue[];
  /** The objects in force as written in etcd, as JSON (for the last-good snapshot). */
  rawJson(): string;
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
  /** The revision of the last change to a routing key seen; never goes back. */
  #routingRevision = 0;
  #generation = 0;
  #closed = false;
  #watcher: Watcher | null = null;
  #wake: (() => void) | null = null;
  /** Revisions are judged one after another, in order, even though judging one may give way to the event loop. */
  #work: Promise<void> = Promise.resolve();
  /** Health views published by the fleet's nodes, by node name. */
  readonly #nodes = new Map<string, unknown>();

  readonly #onState: (state: EtcdState) => void;
  /** One line when etcd goes away, one when it is back: its client retries far more often than anyone needs to read. */
  readonly #outage: OutageLog;

  constructor(client: Etcd3, prefix: string, logger: Logger, metrics: Metrics, onState: (state: EtcdState) => void = () => undefined) {
    this.#client = client;
    this.#outage = new OutageLog(logger, 'etcd unreachable; serving the table in force until it is back', 'etcd reachable again');
    this.#onState = onState;
    this.#keys = new EtcdKeyState(prefix);
    this.#logger = logger;
    this.#metrics = metrics;
    // Registered here, not with the other metrics: a file-mode node exports no etcd series at all.
    void metrics.etcd;
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

  /** The highest mod revision among routing keys; 0 when none is among them. */
  #lastRoutingChange(kvs: readonly { readonly key: string; readonly modRevision: string }[]): number {
    let last = 0;
    for (const kv of kvs) if (this.#keys.isRouting(kv.key)) last = Math.max(last, Number(kv.modRevision));
    return last;
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
        const all = listed.kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString() }));
        const revision = Number(listed.header.revision);
        const routing = this.#lastRoutingChange(listed.kvs.map((kv) => ({ key: kv.key.toString(), modRevision: kv.mod_revision })));
        this.#setState('connected');
        backoff = BACKOFF_MIN_MS;
        await this.#judge(revision, routing, onSnapshot, () => {
          this.#nodes.clear();
          this.#noteNodes(all);
          return this.#keys.replaceAll(all);
        }, true);
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
        this.#noteNodes(changes);
        // A delete event's kv carries the revision of the delete.
        const routing = this.#lastRoutingChange(res.events.map((e) => ({ key: e.kv.key.toString(), modRevision: e.kv.mod_revision })));
        void this.#judge(Number(res.header.revision), routing, onSnapshot, () => this.#keys.update(changes), false);
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

  /**
   * Queues the judging of one revision behind the ones before it, then hands
   * the objects in force (and the keys held back) to `onSnapshot` when it
   * touched routing keys, and after every listing. Refused keys are logged and
   * counted once each.
   */
  #judge(revision: number, routingRevision: number, onSnapshot: (snapshot: EtcdSnapshot) => void, judge: () => Promise<KeyUpdate>, listing: boolean): Promise<void> {
    this.#work = this.#work.then(async () => {
      if (this.#closed) return;
      const update = await judge();
      this.#revision = Math.max(this.#revision, revision);
      this.#routingRevision = Math.max(this.#routingRevision, routingRevision);
      if (update.changed) this.#generation++;
      for (const issue of update.rejected) {
        this.#logger.warn({ key: issue.path, reason: reasonOf(issue), error: issue.message }, 'etcd key rejected; what is in force stays');
        this.#metrics.configRejected.inc({ source: 'etcd', reason: reasonOf(issue) });
      }
      const heldBack = this.#keys.issues();
      this.#metrics.etcd.keysRejected.set(heldBack.length);
      if (!update.touched && !listing) return;
      const keys = this.#keys;
      onSnapshot({ revision: this.#routingRevision, generation: this.#generation, doc: keys.document(), issues: keys.documentIssues(), heldBack, rawJson: () => keys.rawJson() });
    }).catch((err: Error) => this.#logger.error({ err: err.message, revision }, 'etcd revision could not be judged; the table in force stays'));
    return this.#work;
  }

  #setState(state: EtcdState, reason?: string): void {
    // Every failed attempt (a listing, or the client's own watch reconnects) counts as a retry of the outage.
    if (state === 'disconnected') this.#outage.failed({ err: reason });
    if (state === this.#state) return;
    const first = this.#state === 'connecting';
    this.#state = state;
    this.#metrics.etcd.connected.set(state === 'connected' ? 1 : 0);
    this.#onState(state);
    if (state === 'connected' && !this.#outage.recovered({ revision: this.#revision }) && first) this.#logger.info({ revision: this.#revision }, 'etcd connected');
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
