import cluster, { type Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { Logger } from '../observability/logger.js';
import { isProtocolMessage, type AcmeChange, type ListeningMessage, type ToPrimary, type ToWorker } from './messages.js';

/** Settings of a node's worker processes. */
export interface WorkerPoolOptions {
  readonly count: number;
  /** Ports from the configuration (0: the first worker picks one, the others share it). */
  readonly proxyPort: number;
  readonly dnsPort: number | null;
  readonly tlsPort: number | null;
  /** The TLS session ticket keys in force for every worker (48 bytes), null without TLS. */
  ticketKeys(): Uint8Array | null;
  /**
   * Whether the other workers bind the port the first one got (each binds its own
   * socket with SO_REUSEPORT); through the primary, every worker asks for the
   * configured port and the cluster shares one socket, port 0 included.
   */
  readonly ownSockets: boolean;
  readonly logger: Logger;
  /** What a worker that has just started must be told before it listens (the table in force, with health). */
  initial(): readonly ToWorker[];
  /** Every protocol message a worker sends, except the ones the pool answers itself. */
  onMessage(worker: WorkerState, message: ToPrimary): void;
}

/** One worker as the admin state shows it. */
export interface WorkerState {
  readonly id: number;
  readonly pid: number | undefined;
  /** The revision of the table it serves; 0 before its first. */
  revision: number;
  /** When it swapped that table in (ISO time, ms), null before its first: comparing workers shows how far apart they switched. */
  appliedAt: string | null;
  listening: boolean;
  readonly startedAt: number;
}

/** Respawn backoff: the first wait, the longest, and how long a worker must live for the backoff to start over. */
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5_000;
const STABLE_MS = 30_000;
/** How long a metrics request waits for the workers' answers. */
const METRICS_TIMEOUT_MS = 2_000;
/** How long an ACME change waits for the workers to apply it. */
const ACME_TIMEOUT_MS = 5_000;

/**
 * The data-plane workers of a node: started with their table before they
 * listen, respawned with backoff when one dies while the others keep serving,
 * and drained together on shutdown.
 */
export class WorkerPool {
  readonly #options: WorkerPoolOptions;
  readonly #workers = new Map<Worker, WorkerState>();
  readonly #listening = new Map<Worker, (message: ListeningMessage) => void>();
  #ports: { proxy: number; dns: number | null; tls: number | null };
  #stopping = false;
  #backoffMs = BACKOFF_MIN_MS;
  #metricsId = 0;
  #acmeId = 0;
  readonly #acmeWaiting = new Map<number, () => void>();
  readonly #metricsWaiting = new Map<number, (worker: Worker, metrics: MetricObjectWithValues<MetricValue<string>>[]) => void>();

  constructor(options: WorkerPoolOptions) {
    this.#options = options;
    this.#ports = { proxy: options.proxyPort, dns: options.dnsPort, tls: options.tlsPort };
    cluster.setupPrimary({ serialization: 'advanced' });
  }

  /** Starts every worker; resolves with where they listen once all do. */
  async start(): Promise<{ proxy: AddressInfo; dns: AddressInfo | null; tls: AddressInfo | null }> {
    // The first worker binds first: with port 0 it picks the port the others then share.
    const first = await this.#spawn();
    if (this.#options.ownSockets) this.#ports = { proxy: first.proxy.port, dns: first.dns?.port ?? null, tls: first.tls?.port ?? null };
    await Promise.all(Array.from({ length: this.#options.count - 1 }, () => this.#spawn()));
    return { proxy: first.proxy, dns: first.dns, tls: first.tls };
  }

  /** Sends a message to every worker. */
  broadcast(message: ToWorker): void {
    for (const worker of this.#workers.keys()) if (worker.isConnected()) worker.send(message);
  }

  /** Every worker, for the admin state. */
  state(): WorkerState[] {
    return [...this.#workers.values()];
  }

  /** Workers listening now. */
  get listening(): number {
    let n = 0;
    for (const state of this.#workers.values()) if (state.listening) n++;
    return n;
  }

  /** Every worker's metrics (as prom-client JSON); a worker that does not answer in time is left out. */
  async metrics(): Promise<MetricObjectWithValues<MetricValue<string>>[][]> {
    const id = ++this.#metricsId;
    const expected = [...this.#workers.keys()].filter((w) => w.isConnected());
    const answers: MetricObjectWithValues<MetricValue<string>>[][] = [];
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, METRICS_TIMEOUT_MS);
      let left = expected.length;
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      if (left === 0) return done();
      this.#metricsWaiting.set(id, (_worker, metrics) => {
        answers.push(metrics);
        if (--left === 0) done();
      });
      for (const worker of expected) worker.send({ type: 'metrics', id } satisfies ToWorker);
    });
    this.#metricsWaiting.delete(id);
    return answers;
  }

  /** Sends an ACME change to every worker; resolves once each has applied it (a worker that does not answer in time is left out). */
  async acme(change: AcmeChange): Promise<void> {
    const id = ++this.#acmeId;
    const expected = [...this.#workers.keys()].filter((w) => w.isConnected());
    if (expected.length === 0) return;
    await new Promise<void>((resolve) => {
      let left = expected.length;
      const timer = setTimeout(resolve, ACME_TIMEOUT_MS);
      this.#acmeWaiting.set(id, () => {
        if (--left > 0) return;
        clearTimeout(timer);
        resolve();
      });
      for (const worker of expected) worker.send({ type: 'acme', id, change } satisfies ToWorker);
    });
    this.#acmeWaiting.delete(id);
  }

  /** Drains every worker (see DrainMessage) and resolves when all have exited; stragglers are killed. */
  async drain(delayMs: number, timeoutMs: number): Promise<void> {
    this.#stopping = true;
    const exits = [...this.#workers.keys()].map((worker) => new Promise<void>((resolve) => (worker.isDead() ? resolve() : worker.once('exit', () => resolve()))));
    this.broadcast({ type: 'drain', delayMs, timeoutMs });
    let timer: NodeJS.Timeout | undefined;
    const all = Promise.all(exits).then(() => true);
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), delayMs + timeoutMs + 5_000)));
    if (!(await Promise.race([all, late]))) {
      this.#options.logger.warn({ left: [...this.#workers.values()].map((w) => w.pid) }, 'workers did not exit in time; killing them');
      for (const worker of this.#workers.keys()) worker.process.kill('SIGKILL');
      await all;
    }
    clearTimeout(timer);
  }

  /** Forks a worker and resolves once it listens. */
  #spawn(): Promise<ListeningMessage> {
    const worker = cluster.fork({ MERIDIAN_WORKER: '1' });
    const state: WorkerState = { id: worker.id, pid: worker.process.pid, revision: 0, appliedAt: null, listening: false, startedAt: Date.now() };
    this.#workers.set(worker, state);
    const listening = new Promise<ListeningMessage>((resolve, reject) => {
      this.#listening.set(worker, resolve);
      worker.once('exit', (code, signal) => reject(new Error(`worker ${worker.id} exited (${signal ?? code}) before it listened`)));
    });
    worker.on('message', (message: unknown) => this.#received(worker, state, message));
    worker.on('exit', (code, signal) => this.#exited(worker, state, code, signal));
    return listening;
  }

  #received(worker: Worker, state: WorkerState, message: unknown): void {
    if (!isProtocolMessage<ToPrimary>(message)) return;
    switch (message.type) {
      case 'ready':
        for (const initial of this.#options.initial()) worker.send(initial);
        worker.send({ type: 'listen', proxyPort: this.#ports.proxy, dnsPort: this.#ports.dns, tlsPort: this.#ports.tls, ticketKeys: this.#options.ticketKeys() } satisfies ToWorker);
        return;
      case 'listening':
        state.listening = true;
        this.#listening.get(worker)?.(message);
        this.#listening.delete(worker);
        return;
      case 'applied':
        if (message.revision >= state.revision) {
          state.revision = message.revision;
          state.appliedAt = new Date(message.appliedAt).toISOString();
        }
        break;
      case 'metrics':
        this.#metricsWaiting.get(message.id)?.(worker, message.metrics);
        return;
      case 'acme-applied':
        this.#acmeWaiting.get(message.id)?.();
        return;
      default:
        break;
    }
    this.#options.onMessage(state, message);
  }

  #exited(worker: Worker, state: WorkerState, code: number | null, signal: string | null): void {
    this.#workers.delete(worker);
    this.#listening.delete(worker);
    if (this.#stopping) return;
    const lived = Date.now() - state.startedAt;
    if (lived > STABLE_MS) this.#backoffMs = BACKOFF_MIN_MS;
    const wait = this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, BACKOFF_MAX_MS);
    this.#options.logger.warn({ worker: state.id, pid: state.pid, code, signal, respawnInMs: wait }, 'worker exited; starting another');
    const timer = setTimeout(() => {
      if (this.#stopping) return;
      this.#spawn().then(
        () => this.#options.logger.info({ workers: this.listening }, 'worker respawned'),
        (err: Error) => this.#options.logger.error({ err: err.message }, 'respawned worker failed to start'),
      );
    }, wait);
    timer.unref();
  }
}
