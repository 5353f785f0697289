import type { Campaign, Etcd3, Lease } from 'etcd3';
import { ConfigError, type ConfigIssue } from '../config/issues.js';
import type { RolloutSpec, RolloutStatus } from '../config/rollout-schema.js';
import type { Logger } from '../observability/logger.js';
import type { EtcdMetrics } from '../observability/optional-metrics.js';
import { OutageLog } from '../observability/outage-log.js';
import { objectKey } from '../store/etcd-writer.js';
import { editRollout, parseRollout, type StoredRollout } from '../store/rollout-writer.js';
import { decide, stepWeights, type Move, type StepFigures } from './machine.js';
import { readStepFigures, statsPrefix } from './fleet-figures.js';
import { moveEdit } from './moves.js';
import type { StepReport } from './step-stats.js';

/** How often a node publishes its counts. */
export const ROLLOUT_INTERVAL_MS = 1_000;
/**
 * Rounds per publishing interval: rollouts are read, and (by the leader) the
 * gates judged, this many times as often, so a failure is acted on within
 * about one interval of the counts that show it, not two.
 */
const ROUNDS_PER_INTERVAL = 4;
/** Lifetime of a node's published counts, and of the leader's claim, once the node stops renewing them. */
const LEASE_SECONDS = 5;

/** What a rollout part needs from the node. */
export interface RolloutNodeOptions {
  readonly client: Etcd3;
  readonly prefix: string;
  readonly node: string;
  /** What the node's processes counted of each running step, one report per process (each published under its own `node` name). */
  readonly reports: () => readonly StepReport[];
  readonly metrics: EtcdMetrics;
  readonly logger: Logger;
  /** Told the rollouts whenever they are read: the processes that count follow them. */
  readonly onRollouts: (rollouts: ReadonlyMap<string, RolloutSpec>) => void;
  readonly intervalMs?: number;
}

/** A rollout as the admin state shows it. */
export interface RolloutState {
  readonly from: string;
  readonly to: string;
  readonly steps: readonly number[];
  readonly state: string;
  readonly step: number | null;
  readonly weight: number | null;
  readonly reason: string | null;
  readonly stepStartedAt: string | null;
  readonly figures: StepFigures | null;
  readonly history: RolloutStatus['history'];
}

/** Not a move: the leader found nothing to do once it read the keys again. */
class NoMove extends Error {}

/**
 * A node's part in rollouts (etcd mode): every second it publishes what its
 * processes counted of each running step under its lease
 * (`<prefix>rollout-stats/<service>/<node>`, `<node>.w<N>` per worker); four times a second it reads the
 * rollouts, and campaigns to lead while there are any. The leader merges
 * every node's counts of a step, runs the gates, and writes each
 * move (rollout and service in one compare-and-swap transaction); when it dies
 * its claim lapses within LEASE_SECONDS and another node goes on from the same
 * step, since everything a rollout is lives in etcd.
 */
export class RolloutNode {
  readonly #o: RolloutNodeOptions;
  readonly #interval: number;
  #rollouts = new Map<string, StoredRollout>();
  #problems: ConfigIssue[] = [];
  #figures = new Map<string, StepFigures>();
  /** Why the leader cannot write a rollout's move, per service (cleared once one is written). */
  readonly #moveProblems = new Map<string, string>();
  #lease: Lease | null = null;
  #campaign: Campaign | null = null;
  #leading = false;
  /** The last history entry counted per service (leader only): transitions are counted once, by whoever leads when they appear. */
  #counted = new Map<string, string>();
  /**
   * Set on election: what is in the histories then was counted by the leader
   * before, except the last few seconds' (a start that made the nodes
   * campaign, or a move the old leader wrote just before it died).
   */
  #newLeader = false;
  #timer: NodeJS.Timeout | null = null;
  #round = 0;
  #running: Promise<void> = Promise.resolve();
  #closed = false;
  readonly #outage: OutageLog;

  constructor(options: RolloutNodeOptions) {
    this.#o = options;
    this.#interval = options.intervalMs ?? ROLLOUT_INTERVAL_MS;
    this.#outage = new OutageLog(options.logger, 'rollouts: cannot read or publish in etcd; retrying every second', 'rollouts: etcd answers again');
  }

  start(): void {
    this.#timer = setInterval(() => {
      this.#running = this.#running.then(() => this.#tick());
    }, this.#interval / ROUNDS_PER_INTERVAL);
    this.#timer.unref();
  }

  /** Whether this node leads rollouts now. */
  get leading(): boolean {
    return this.#leading;
  }

  /** The rollouts as this node read them last, for the admin state. */
  state(): { leader: boolean; rollouts: Record<string, RolloutState>; errors: ConfigIssue[] } {
    const rollouts: Record<string, RolloutState> = {};
    for (const [service, r] of this.#rollouts) {
      const s = r.spec.status;
      rollouts[service] = {
        from: r.spec.from,
        to: r.spec.to,
        steps: r.spec.steps,
        state: s?.state ?? 'starting',
        step: s?.step ?? null,
        weight: s === undefined ? null : stepWeights(r.spec, s.step).to,
        reason: s?.reason ?? null,
        stepStartedAt: s?.stepStartedAt ?? null,
        figures: this.#figures.get(service) ?? null,
        history: s?.history ?? [],
      };
    }
    const refused = [...this.#moveProblems].map(([service, message]) => ({ path: `${this.#o.prefix}rollouts/${service}`, message: `the move due cannot be written: ${message}` }));
    return { leader: this.#leading, rollouts, errors: [...this.#problems, ...refused] };
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    await this.#running;
    await this.#campaign?.resign().catch(() => undefined);
    await this.#lease?.revoke().catch(() => undefined);
  }

  #campaignNow(): void {
    if (this.#closed) return;
    const campaign = this.#o.client.namespace(this.#o.prefix).election('rollout-leader', LEASE_SECONDS).campaign(this.#o.node);
    this.#campaign = campaign;
    campaign.on('elected', () => {
      this.#leading = true;
      this.#counted.clear();
      this.#newLeader = true;
      this.#o.logger.info({ node: this.#o.node }, 'rollouts: this node leads them now');
    });
    campaign.on('error', (err: Error) => {
      if (this.#campaign !== campaign) return;
      this.#leading = false;
      this.#campaign = null;
      // A lost claim (etcd away longer than its lease): the next round campaigns again.
      this.#outage.failed({ err: err.message, part: 'leader election' });
    });
  }

  async #tick(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#read();
      if (this.#round++ % ROUNDS_PER_INTERVAL === 0) await this.#publish();
      // Nodes campaign once there is a rollout to lead: a fleet that never uses them keeps no election keys.
      if (this.#campaign === null && this.#rollouts.size > 0) this.#campaignNow();
      if (this.#leading) await this.#lead();
      this.#outage.recovered({});
    } catch (err) {
      // With no rollout known, etcd being away is the store's to report, not this part's.
      if (this.#rollouts.size > 0 || this.#outage.failing) this.#outage.failed({ err: (err as Error).message });
    }
  }

  /** Reads every rollout key; one that does not validate keeps its last valid version and is reported. */
  async #read(): Promise<void> {
    const rolloutsPrefix = `${this.#o.prefix}rollouts/`;
    const res = await this.#o.client.getAll().prefix(rolloutsPrefix).exec();
    const next = new Map<string, StoredRollout>();
    const problems: ConfigIssue[] = [];
    for (const kv of res.kvs) {
      const key = kv.key.toString();
      const service = key.slice(rolloutsPrefix.length);
      try {
        next.set(service, { key, ...parseRollout(key, kv.value.toString()), modRevision: Number(kv.mod_revision) });
      } catch (err) {
        const issues = err instanceof ConfigError ? err.issues : [{ path: key, message: (err as Error).message }];
        problems.push(...issues.map((i) => ({ ...i, message: `${i.message} (the last valid version stays in force)` })));
        const known = this.#rollouts.get(service);
        if (known !== undefined) next.set(service, known);
      }
    }
    this.#rollouts = next;
    this.#problems = problems;
    for (const service of this.#moveProblems.keys()) if (!next.has(service)) this.#moveProblems.delete(service);
    const specs = new Map([...next].map(([service, r]) => [service, r.spec]));
    this.#o.onRollouts(specs);
  }

  /** Writes what this node counted of each running step, under its lease. */
  async #publish(): Promise<void> {
    const reports = this.#o.reports();
    if (reports.length === 0) return;
    if (this.#lease === null || this.#lease.revoked()) {
      const lease = this.#o.client.lease(LEASE_SECONDS, { autoKeepAlive: true });
      lease.on('lost', () => {
        if (this.#lease === lease) this.#lease = null;
      });
      this.#lease = lease;
    }
    const lease = this.#lease;
    await Promise.all(reports.map((r) => lease.put(`${statsPrefix(this.#o.prefix, r.service)}${r.node}`).value(JSON.stringify(r))));
  }

  /** The leader's round: count new transitions, then judge every running rollout. */
  async #lead(): Promise<void> {
    const countSince = this.#newLeader ? Date.now() - 3 * this.#interval : Number.NEGATIVE_INFINITY;
    this.#newLeader = false;
    for (const [service, r] of this.#rollouts) {
      this.#countTransitions(service, r.spec, countSince);
      const status = r.spec.status;
      if (status !== undefined && status.state !== 'running') {
        this.#moveProblems.delete(service);
        continue;
      }
      const figures = (await readStepFigures(this.#o.client, this.#o.prefix, service, r.spec))?.figures ?? null;
      if (figures !== null) this.#figures.set(service, figures);
      await this.#move(service, r, figures);
    }
  }

  /** Writes the move due now, decided again on the keys as they are when written (compare-and-swap). */
  async #move(service: string, r: StoredRollout, figures: StepFigures | null): Promise<void> {
    const serviceKey = objectKey(this.#o.prefix, 'services', service);
    const svc = (await this.#o.client.get(serviceKey).exec()).kvs[0];
    if (svc === undefined) return;
    const sameStep = (spec: RolloutSpec): boolean => spec.status?.step === r.spec.status?.step && spec.status?.stepStartedAt === r.spec.status?.stepStartedAt;
    if (decide({ service, spec: r.spec, rolloutRevision: r.modRevision, serviceRevision: Number(svc.mod_revision) }, figures, Date.now()) === null) {
      this.#moveProblems.delete(service);
      return;
    }
    let made: Move | null = null;
    try {
      await editRollout(this.#o.client, this.#o.prefix, service, (current, stored) => {
        if (current === null) throw new NoMove();
        const move = decide({ service, spec: current.spec, rolloutRevision: current.modRevision, serviceRevision: Number(stored.modRevision) }, sameStep(current.spec) ? figures : null, Date.now());
        if (move === null) throw new NoMove();
        made = move;
        return moveEdit(service, current.raw, current.spec, stored, move);
      });
    } catch (err) {
      if (err instanceof NoMove) return;
      // Refused (the rollout names a version the service lacks, say) or etcd away: shown in the state, logged once per cause.
      const message = err instanceof ConfigError ? err.issues.map((i) => `${i.path}: ${i.message}`).join('; ') : (err as Error).message;
      if (this.#moveProblems.get(service) !== message) this.#o.logger.warn({ service, err: message }, 'rollouts: a move cannot be written; tried again every round');
      this.#moveProblems.set(service, message);
      return;
    }
    this.#moveProblems.delete(service);
    const move = made as Move | null;
    if (move !== null) this.#o.logger.info({ service, result: move.result, step: move.step, weights: move.weights }, `rollout of ${service}: ${move.reason}`);
  }

  /** Counts the transitions in a rollout's history this leader has not counted yet, those written since `countSince` (epoch ms). */
  #countTransitions(service: string, spec: RolloutSpec, countSince: number): void {
    const history = spec.status?.history ?? [];
    const mark = (h: { at: string; result: string }): string => `${h.at} ${h.result}`;
    const last = history[history.length - 1];
    const seen = this.#counted.get(service);
    if (last === undefined) return;
    this.#counted.set(service, mark(last));
    const from = seen === undefined ? -1 : history.findIndex((h) => mark(h) === seen);
    for (const h of history.slice(from + 1)) if (Date.parse(h.at) >= countSince) this.#o.metrics.rolloutTransitions.inc({ service, result: h.result });
  }
}
