import t from 'tap';
import { mergeReports, parseReport, StepCounter, type StepReport } from '../src/rollout/step-stats.js';

const id = { service: 'web', step: 1, stepStartedAt: '2026-12-01T10:00:00.000Z' };

t.test('two nodes: counts add up, latency sketches merge into the fleet p99', async (t) => {
  const a = new StepCounter(id);
  const b = new StepCounter(id);
  // Node a sees stable at 1..1000 ms in eu-west; node b sees the canary at 3x that, some failing, in us-east.
  for (let i = 1; i <= 1000; i++) a.record('stable', 'eu-west', false, i);
  for (let i = 1; i <= 1000; i++) b.record('stable', 'us-east', i % 100 === 0, i);
  for (let i = 1; i <= 200; i++) b.record('canary', 'us-east', i % 10 === 0, 3 * i * 5);
  const reports = [a.report('node-a'), b.report('node-b')].map((r) => parseReport(JSON.stringify(r)) as StepReport);
  t.ok(reports.every((r) => r !== null), 'reports survive JSON and parse back');
  const f = mergeReports(id, 'stable', 'canary', reports);
  t.same([f.from.requests, f.from.errors, f.to.requests, f.to.errors], [2000, 10, 200, 20]);
  t.ok(Math.abs((f.from.p99Ms as number) - 990) / 990 < 0.02, `stable p99 ${f.from.p99Ms} within 2 % of 990`);
  t.ok(Math.abs((f.to.p99Ms as number) - 2970) / 2970 < 0.02, `canary p99 ${f.to.p99Ms} within 2 % of 2970`);
  t.same(f.regions?.get('eu-west')?.to, { requests: 0, errors: 0, p99Ms: null }, 'no canary in eu-west');
  t.equal(f.regions?.get('us-east')?.to.requests, 200);
});

t.test('only the same step counts; garbage is left out', async (t) => {
  const now = new StepCounter(id);
  const before = new StepCounter({ ...id, step: 0 });
  const restarted = new StepCounter({ ...id, stepStartedAt: '2026-12-01T09:00:00.000Z' });
  for (const c of [now, before, restarted]) for (let i = 0; i < 10; i++) c.record('canary', 'eu-west', false, 5);
  const broken: StepReport = { ...now.report('node-x'), regions: { 'eu-west': { canary: { requests: 5, errors: 0, sketch: 'not a sketch' } } } };
  const f = mergeReports(id, 'stable', 'canary', [now.report('a'), before.report('b'), restarted.report('c'), broken]);
  t.equal(f.to.requests, 10, 'the previous step, a restarted step and an unreadable sketch are not counted');
  t.equal(parseReport('{"service":"web"}'), null);
  t.equal(parseReport('not json'), null);
  t.equal(parseReport(JSON.stringify({ ...now.report('a'), extra: 1 })), null, 'unknown fields refused');
});
