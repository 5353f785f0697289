import { z } from 'zod';
import { durationMs, objectName } from './primitives.js';

/** Where a rollout stands. `running` and `paused` are active; the rest are final. */
export const ROLLOUT_STATES = ['running', 'paused', 'succeeded', 'failed', 'aborted'] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];

/** What a transition did, as `meridian_rollout_transitions_total{result}` and the history name it. */
export const TRANSITIONS = ['started', 'advanced', 'paused', 'resumed', 'promoted', 'succeeded', 'failed', 'aborted'] as const;
export type Transition = (typeof TRANSITIONS)[number];

/** How many transitions a rollout's history keeps (the oldest go first). */
export const HISTORY_LENGTH = 20;

const isoTime = z.iso.datetime({ offset: true });

/** The gates a step must pass, judged on the fleet's figures for the step. */
const gatesSchema = z.strictObject({
  /** The to-version's error ratio (5xx and Meridian's own errors) at most this many times the from-version's. */
  maxErrorRatio: z.number().min(1).max(1000).default(2),
  /** And never above this absolute ceiling, whatever the from-version does. */
  maxErrorRate: z.number().min(0).max(1).default(0.05),
  /** The to-version's p99 at most this many times the from-version's ... */
  maxLatencyRatio: z.number().min(1).max(1000).default(1.5),
  /** ... unless it is within this margin of it (two fast versions never fail on a millisecond). */
  latencyMargin: durationMs.default(10),
  /** Judge every region on its own (a region with too few requests is not judged) instead of the fleet's totals. */
  perRegion: z.boolean().default(false),
});

const historyEntry = z.strictObject({
  at: isoTime,
  result: z.enum(TRANSITIONS),
  step: z.int().min(0),
  reason: z.string().max(500),
});

/** Written by whoever moves the rollout (the leading node, or the CLI for pause, resume, promote and abort). */
const statusSchema = z.strictObject({
  state: z.enum(ROLLOUT_STATES),
  /** Index into `steps`. */
  step: z.int().min(0),
  stepStartedAt: isoTime,
  reason: z.string().max(500),
  /** The from-version's figures of the last step where it had enough requests: the comparison once it has none (the 100 % step). */
  baseline: z
    .strictObject({ errorRate: z.number().min(0).max(1), p99Ms: z.number().min(0).nullable(), requests: z.int().min(0) })
    .nullable()
    .default(null),
  history: z.array(historyEntry).max(HISTORY_LENGTH).default([]),
});

/** A rollout object, as stored at `<prefix>rollouts/<service>` (plain JSON). */
export const rolloutSchema = z
  .strictObject({
    from: objectName,
    to: objectName,
    /** The to-version's weight at each step, in percent: rising, ending at 100 (blue-green: [100]). */
    steps: z.array(z.int().min(1).max(100)).min(1).max(20).default([1, 5, 25, 50, 100]),
    /** How long each step holds before it may advance. */
    hold: durationMs.default(300_000),
    /** Requests the to-version must have served in a step before its gates are judged. */
    minRequests: z.int().min(1).max(100_000_000).default(100),
    gates: gatesSchema.default(() => gatesSchema.parse({})),
    /** Absent until the rollout starts. */
    status: statusSchema.optional(),
  })
  .superRefine((r, ctx) => {
    if (r.from === r.to) ctx.addIssue({ code: 'custom', path: ['to'], message: 'must differ from "from"' });
    for (let i = 1; i < r.steps.length; i++) {
      if ((r.steps[i] as number) <= (r.steps[i - 1] as number)) ctx.addIssue({ code: 'custom', path: ['steps', i], message: 'steps must rise' });
    }
    if (r.steps[r.steps.length - 1] !== 100) ctx.addIssue({ code: 'custom', path: ['steps'], message: 'the last step must be 100' });
    if (r.status !== undefined && r.status.step >= r.steps.length) ctx.addIssue({ code: 'custom', path: ['status', 'step'], message: `must be below ${r.steps.length} (the number of steps)` });
  });

export type RolloutSpec = z.output<typeof rolloutSchema>;
export type RolloutStatus = NonNullable<RolloutSpec['status']>;
export type RolloutGates = RolloutSpec['gates'];

/** Whether a rollout still moves weights (running or paused). */
export function isActive(state: RolloutState | undefined): boolean {
  return state === undefined || state === 'running' || state === 'paused';
}
