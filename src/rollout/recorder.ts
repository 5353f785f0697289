import type { RolloutSpec } from '../config/rollout-schema.js';
import type { OutcomeSink } from '../proxy/outcomes.js';
import { StepCounter, type StepReport } from './step-stats.js';

/** The counter of a service's running rollout, with the two versions it compares. */
interface Tracked {
  readonly counter: StepCounter;
  readonly from: string;
  readonly to: string;
}

/**
 * This process's counts of the running rollouts: the proxy hands it every
 * exchange's outcome; it keeps those of a running rollout's from- and
 * to-version, per step. A new step (or a restarted one) starts from zero.
 */
export class RolloutRecorder implements OutcomeSink {
  #tracked = new Map<string, Tracked>();

  /** Follows the rollouts as they stand: a running one is counted for its current step; the rest are not counted. */
  track(rollouts: ReadonlyMap<string, RolloutSpec>): void {
    const next = new Map<string, Tracked>();
    for (const [service, spec] of rollouts) {
      const status = spec.status;
      if (status?.state !== 'running') continue;
      const known = this.#tracked.get(service);
      const same = known !== undefined && known.counter.id.step === status.step && known.counter.id.stepStartedAt === status.stepStartedAt && known.from === spec.from && known.to === spec.to;
      next.set(service, same ? known : { counter: new StepCounter({ service, step: status.step, stepStartedAt: status.stepStartedAt }), from: spec.from, to: spec.to });
    }
    this.#tracked = next;
  }

  record(service: string, version: string, region: string, failed: boolean, durationMs: number): void {
    const tracked = this.#tracked.get(service);
    if (tracked === undefined || (version !== tracked.from && version !== tracked.to)) return;
    tracked.counter.record(version, region, failed, durationMs);
  }

  /** What this process counted of each running rollout's step. */
  reports(node: string): StepReport[] {
    return [...this.#tracked.values()].map((t) => t.counter.report(node));
  }
}
