import t from 'tap';
import { rolloutSchema, type RolloutSpec } from '../src/config/rollout-schema.js';
import { ERROR_RATE_FLOOR, judge } from '../src/rollout/gates.js';
import { applyMove, commandMove, decide, stepWeights, type Move, type StepFigures } from '../src/rollout/machine.js';

const T0 = Date.parse('2026-12-01T10:00:00.000Z');

function spec(extra: Record<string, unknown> = {}): RolloutSpec {
  return rolloutSchema.parse({ from: 'stable', to: 'canary', hold: '1m', minRequests: 100, ...extra });
}

function running(s: RolloutSpec, step: number, startedAt = T0, baseline: { errorRate: number; p99Ms: number | null; requests: number } | null = null): RolloutSpec {
  return { ...s, status: { state: 'running', step, stepStartedAt: new Date(startedAt).toISOString(), reason: '', baseline, history: [] } };
}

const figures = (to: [number, number, number | null], from: [number, number, number | null]): StepFigures => ({
  to: { requests: to[0], errors: to[1], p99Ms: to[2] },
  from: { requests: from[0], errors: from[1], p99Ms: from[2] },
});

const view = (s: RolloutSpec, rolloutRevision = 10, serviceRevision = 10) => ({ service: 'web', spec: s, rolloutRevision, serviceRevision });

t.test('the schema: defaults, and what it refuses', async (t) => {
  const s = rolloutSchema.parse({ from: 'blue', to: 'green' });
  t.same(s.steps, [1, 5, 25, 50, 100]);
  t.equal(s.hold, 300_000);
  t.same(s.gates, { maxErrorRatio: 2, maxErrorRate: 0.05, maxLatencyRatio: 1.5, latencyMargin: 10, perRegion: false });
  const refused = (value: unknown): string[] => {
    const r = rolloutSchema.safeParse(value);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  t.match(refused({ from: 'a', to: 'a' }), [/^to: must differ/]);
  t.match(refused({ from: 'a', to: 'b', steps: [5, 1, 100] }), [/^steps.1: steps must rise/]);
  t.match(refused({ from: 'a', to: 'b', steps: [1, 50] }), [/^steps: the last step must be 100/]);
  t.match(refused({ from: 'a', to: 'b', hold: 'soon' }), [/^hold: "soon" is not a duration/]);
  t.match(refused({ from: 'a', to: 'b', colour: 'red' }), [/unrecognized key/i]);
  t.match(refused({ from: 'a', to: 'b', steps: [100], status: { state: 'running', step: 1, stepStartedAt: '2026-12-01T10:00:00Z', reason: '' } }), [/^status.step: must be below 1/]);
});

t.test('gates', async (t) => {
  const g = spec().gates;
  t.same(judge(g, 100, { requests: 99, errors: 0, p99Ms: 1 }, null), { verdict: 'wait' }, 'not judged before minRequests');
  t.same(judge(g, 100, { requests: 100, errors: 0, p99Ms: 1 }, null), { verdict: 'pass' });
  t.match(judge(g, 100, { requests: 100, errors: 6, p99Ms: 1 }, null), { verdict: 'fail', reason: /6.00 % above the 5.00 % ceiling/ });
  t.match(judge(g, 100, { requests: 40, errors: 6, p99Ms: 1 }, null), { verdict: 'fail', reason: /whatever the next ones do/ }, 'a certain failure is declared before minRequests');
  t.same(judge(g, 100, { requests: 40, errors: 5, p99Ms: 1 }, null), { verdict: 'wait' }, 'five errors in 40 can still end under the ceiling');
  const stable = { errorRate: 0.01, p99Ms: 20, requests: 5000 };
  t.same(judge(g, 100, { requests: 1000, errors: 20, p99Ms: 20 }, stable), { verdict: 'pass' }, 'twice the baseline passes');
  t.match(judge(g, 100, { requests: 1000, errors: 21, p99Ms: 20 }, stable), { verdict: 'fail', reason: /above 2 x the from-version's 1.00 %/ });
  const clean = { errorRate: 0, p99Ms: 20, requests: 5000 };
  t.same(judge(g, 100, { requests: 1000, errors: 1, p99Ms: 20 }, clean), { verdict: 'pass' }, `one error in 1000 against none: the floor (${ERROR_RATE_FLOOR}) keeps it from failing`);
  t.match(judge(g, 100, { requests: 1000, errors: 50, p99Ms: 20 }, clean), { verdict: 'fail' }, '5 % 500s against none fail');
  t.match(judge(g, 100, { requests: 1000, errors: 0, p99Ms: 60 }, stable), { verdict: 'fail', reason: /p99 60.0 ms above 1.5 x the from-version's 20.0 ms/ }, 'p99 3x fails');
  t.same(judge(g, 100, { requests: 1000, errors: 0, p99Ms: 29 }, stable), { verdict: 'pass' });
  t.same(judge(g, 100, { requests: 1000, errors: 0, p99Ms: 10.9 }, { errorRate: 0, p99Ms: 1, requests: 500 }), { verdict: 'pass' }, 'within the 10 ms margin, a fast version is not failed for being 10.9x');
});

t.test('decide: start, hold, advance, succeed', async (t) => {
  const s = spec();
  const start = decide(view(s), null, T0) as Move;
  t.same([start.result, start.step, start.weights], ['started', 0, { from: 99, to: 1 }]);
  const r0 = running(s, 0);
  t.equal(decide(view(r0), figures([150, 0, 10], [15000, 10, 10]), T0 + 30_000), null, 'the step holds for its full minute');
  t.equal(decide(view(r0), figures([50, 0, 10], [5000, 10, 10]), T0 + 90_000), null, 'held, but too few requests to the canary');
  const adv = decide(view(r0), figures([150, 0, 10], [15000, 10, 10]), T0 + 61_000) as Move;
  t.same([adv.result, adv.step, adv.weights], ['advanced', 1, { from: 95, to: 5 }]);
  t.match(adv.baseline, { requests: 15000, p99Ms: 10 }, 'the stable figures become the baseline');
  // The last step: the from-version has no traffic; the carried baseline judges the canary.
  const last = running(s, 4, T0, { errorRate: 0.001, p99Ms: 10, requests: 9000 });
  const done = decide(view(last), figures([2000, 1, 11], [0, 0, null]), T0 + 61_000) as Move;
  t.same([done.result, done.state, done.weights], ['succeeded', 'succeeded', null]);
  const slow = decide(view(last), figures([2000, 0, 40], [0, 0, null]), T0 + 10_000) as Move;
  t.same([slow.result, slow.weights], ['failed', { from: 100, to: 0 }], 'judged against the carried baseline at 100 %');
  t.same(stepWeights(spec({ steps: [100] }), 0), { from: 0, to: 100 }, 'blue-green flips at once');
});

t.test('decide: failure rolls back at once; a service edited by someone else pauses', async (t) => {
  const r = running(spec(), 1);
  const failed = decide(view(r), figures([100, 5, 10], [9900, 0, 10]), T0 + 1000) as Move;
  t.same([failed.result, failed.state, failed.weights], ['failed', 'failed', { from: 100, to: 0 }]);
  t.match(failed.reason, /5.00 % above 2 x the from-version's 0.00 %.*stable takes 100 % again/);
  const paused = decide(view(r, 10, 12), figures([100, 0, 10], [9900, 0, 10]), T0 + 100_000) as Move;
  t.same([paused.result, paused.state, paused.weights], ['paused', 'paused', null]);
  t.match(paused.reason, /services\/web was changed outside the rollout \(revision 12\)/);
  t.equal(decide(view({ ...r, status: { ...r.status!, state: 'paused' } }), figures([100, 50, 10], [100, 0, 10]), T0), null, 'a paused rollout is not judged');
  t.equal(decide(view(r), null, T0 + 100_000), null, 'no figures, no move');
});

t.test('per region: a region failing on its own fails the step, though the totals pass', async (t) => {
  const s = running(spec({ gates: { perRegion: true } }), 1);
  const regions = new Map([
    ['eu-west', { to: { requests: 900, errors: 0, p99Ms: 10 }, from: { requests: 9000, errors: 90, p99Ms: 10 } }],
    ['ap-south', { to: { requests: 100, errors: 10, p99Ms: 10 }, from: { requests: 1000, errors: 10, p99Ms: 10 } }],
  ]);
  const figures = { to: { requests: 1000, errors: 10, p99Ms: 10 }, from: { requests: 10000, errors: 100, p99Ms: 10 }, regions };
  t.equal(decide(view(running(spec(), 1)), figures, T0 + 1000), null, 'judged on the totals (1 % against 1 %) it holds');
  const failed = decide(view(s), figures, T0 + 1000) as Move;
  t.same([failed.result, failed.weights], ['failed', { from: 100, to: 0 }]);
  t.match(failed.reason, /^in ap-south: error rate 10.00 % above the 5.00 % ceiling/);
  const quiet = new Map([['ap-south', { to: { requests: 10, errors: 1, p99Ms: 10 }, from: { requests: 100, errors: 0, p99Ms: 10 } }]]);
  t.equal(decide(view(s), { ...figures, to: { requests: 1000, errors: 1, p99Ms: 10 }, regions: quiet }, T0 + 1000), null, 'a region with too few requests is not judged');
});

t.test('operator commands and the history', async (t) => {
  const s = spec();
  const r = running(s, 2);
  t.equal(commandMove(r, 'resume'), 'the rollout is not paused');
  const pause = commandMove(r, 'pause') as Move;
  const paused = applyMove(r.status, pause, new Date(T0 + 5000));
  t.same([paused.state, paused.step, paused.stepStartedAt], ['paused', 2, r.status?.stepStartedAt], 'pausing keeps the step and its start');
  const resume = commandMove({ ...s, status: paused }, 'resume') as Move;
  t.same(resume.weights, { from: 75, to: 25 }, "resume writes the step's weights again");
  const resumed = applyMove(paused, resume, new Date(T0 + 9000));
  t.equal(resumed.stepStartedAt, new Date(T0 + 9000).toISOString(), 'and the step starts over');
  t.same(resumed.history.map((h) => h.result), ['paused', 'resumed']);
  t.same((commandMove(r, 'promote') as Move).weights, { from: 0, to: 100 });
  const aborted = applyMove(r.status, commandMove(r, 'abort') as Move, new Date(T0));
  t.same([aborted.state, (commandMove(r, 'abort') as Move).weights], ['aborted', { from: 100, to: 0 }]);
  t.equal(commandMove({ ...s, status: aborted }, 'pause'), 'the rollout has aborted; start a new one');
  let status = r.status;
  for (let i = 0; i < 30; i++) status = applyMove(status, pause, new Date(T0 + i));
  t.equal(status?.history.length, 20, 'the history keeps the last 20 transitions');
});
