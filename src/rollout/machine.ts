import { HISTORY_LENGTH, type RolloutSpec, type RolloutState, type RolloutStatus, type Transition } from '../config/rollout-schema.js';
import { baselineOf, judge, type Baseline, type VersionFigures } from './gates.js';

/** A rollout as read from etcd, with the revisions that tell who wrote last. */
export interface RolloutView {
  readonly service: string;
  readonly spec: RolloutSpec;
  /** The revision that last wrote the rollout key. */
  readonly rolloutRevision: number;
  /** The revision that last wrote the service key. */
  readonly serviceRevision: number;
}

/** The fleet's figures of the current step: totals, and per region when the gates look at regions. */
export interface StepFigures {
  readonly to: VersionFigures;
  readonly from: VersionFigures;
  readonly regions?: ReadonlyMap<string, { readonly to: VersionFigures; readonly from: VersionFigures }>;
}

/** The from- and to-version's weights a move writes (null: weights stay as they are). */
export interface Weights {
  readonly from: number;
  readonly to: number;
}

/** One change of a rollout: its new status, and the weights to write with it in the same transaction. */
export interface Move {
  readonly result: Transition;
  readonly state: RolloutState;
  readonly step: number;
  readonly reason: string;
  readonly weights: Weights | null;
  /** A new baseline (on advancing); undefined: keep the one there is. */
  readonly baseline?: Baseline | null;
  /** Whether the step's clock starts again (a new step, or a resume). */
  readonly restartsStep: boolean;
}

/** The weights of step `index`: the to-version takes the step's percent, the from-version the rest. */
export function stepWeights(spec: RolloutSpec, index: number): Weights {
  const to = spec.steps[index] as number;
  return { from: 100 - to, to };
}

/**
 * What the leading node does with a rollout now: start it, pause it when
 * someone else changed the service, roll it back when a gate fails, advance
 * it when a step has held long enough with its gates passed, or nothing.
 */
export function decide(view: RolloutView, figures: StepFigures | null, nowMs: number): Move | null {
  const { spec } = view;
  const status = spec.status;
  if (status === undefined) {
    return { result: 'started', state: 'running', step: 0, reason: `${spec.to} takes ${spec.steps[0]} %`, weights: stepWeights(spec, 0), baseline: null, restartsStep: true };
  }
  if (status.state !== 'running') return null;
  if (view.serviceRevision > view.rolloutRevision) {
    return { result: 'paused', state: 'paused', step: status.step, reason: `services/${view.service} was changed outside the rollout (revision ${view.serviceRevision}); resume to go on`, weights: null, restartsStep: false };
  }
  if (figures === null) return null;
  const baseline = baselineOf(figures.from, spec.minRequests) ?? status.baseline;
  const failure = gateFailure(spec, figures, baseline);
  if (failure !== null) {
    return { result: 'failed', state: 'failed', step: status.step, reason: `${failure}; ${spec.from} takes 100 % again`, weights: { from: 100, to: 0 }, restartsStep: false };
  }
  const held = nowMs - Date.parse(status.stepStartedAt) >= spec.hold;
  if (!held || figures.to.requests < spec.minRequests) return null;
  const last = status.step >= spec.steps.length - 1;
  if (last) return { result: 'succeeded', state: 'succeeded', step: status.step, reason: `${spec.to} serves 100 % with its gates passed`, weights: null, restartsStep: false };
  const next = status.step + 1;
  return { result: 'advanced', state: 'running', step: next, reason: `gates passed at ${spec.steps[status.step]} %: ${spec.to} takes ${spec.steps[next]} %`, weights: stepWeights(spec, next), baseline, restartsStep: true };
}

/** Why the step fails its gates (fleet totals, then each region when asked), or null. */
function gateFailure(spec: RolloutSpec, figures: StepFigures, baseline: Baseline | null): string | null {
  const total = judge(spec.gates, spec.minRequests, figures.to, baseline);
  if (total.verdict === 'fail') return total.reason;
  if (!spec.gates.perRegion || figures.regions === undefined) return null;
  for (const [region, f] of figures.regions) {
    const verdict = judge(spec.gates, spec.minRequests, f.to, baselineOf(f.from, spec.minRequests) ?? baseline);
    if (verdict.verdict === 'fail') return `in ${region}: ${verdict.reason}`;
  }
  return null;
}

/** What an operator asks of a rollout (the CLI). */
export type Command = 'pause' | 'resume' | 'promote' | 'abort';

/** The move an operator's command makes, or the reason it cannot. */
export function commandMove(spec: RolloutSpec, command: Command): Move | string {
  const status = spec.status;
  const state = status?.state;
  const step = status?.step ?? 0;
  if (state !== undefined && state !== 'running' && state !== 'paused') return `the rollout has ${state}; start a new one`;
  switch (command) {
    case 'pause':
      if (state === 'paused') return 'the rollout is already paused';
      return { result: 'paused', state: 'paused', step, reason: 'paused by an operator', weights: null, restartsStep: false };
    case 'resume':
      if (state !== 'paused') return 'the rollout is not paused';
      // The step's weights again (a manual edit may have moved them), and its clock from now.
      return { result: 'resumed', state: 'running', step, reason: `resumed by an operator at ${spec.steps[step]} %`, weights: stepWeights(spec, step), restartsStep: true };
    case 'promote':
      return { result: 'promoted', state: 'succeeded', step: spec.steps.length - 1, reason: `promoted by an operator: ${spec.to} takes 100 %`, weights: { from: 0, to: 100 }, restartsStep: true };
    case 'abort':
      return { result: 'aborted', state: 'aborted', step, reason: `aborted by an operator: ${spec.from} takes 100 % again`, weights: { from: 100, to: 0 }, restartsStep: false };
  }
}

/** The status after a move, its transition added to the history. */
export function applyMove(status: RolloutStatus | undefined, move: Move, now: Date): RolloutStatus {
  const at = now.toISOString();
  const history = [...(status?.history ?? []), { at, result: move.result, step: move.step, reason: move.reason }].slice(-HISTORY_LENGTH);
  return {
    state: move.state,
    step: move.step,
    stepStartedAt: move.restartsStep || status === undefined ? at : status.stepStartedAt,
    reason: move.reason,
    baseline: move.baseline === undefined ? (status?.baseline ?? null) : move.baseline,
    history,
  };
}
