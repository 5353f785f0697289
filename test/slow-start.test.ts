import t from 'tap';
import { pickEndpoint } from '../src/routing/balancer.js';
import type { Endpoint } from '../src/routing/table.js';
import { compileClean, groupOf, versionOf } from './helpers/table.js';

t.test('slow start: a recovered endpoint gets a small share that grows to its full weight', async (t) => {
  const table = compileClean({
    regions: { 'eu-west': { location: { lat: 53.35, lon: -6.26 } } },
    services: { web: { slowStart: '10s', versions: { stable: { endpoints: { 'eu-west': ['127.0.0.1:1001', '127.0.0.1:1002'] } } } } },
  });
  const group = groupOf(versionOf(table, 'web'), 'eu-west');
  const [a, b] = group.endpoints as [Endpoint, Endpoint];
  for (const ep of [a, b]) {
    ep.health.checkPassed(1);
    ep.health.checkPassed(1);
  }
  t.equal(a.health.state, 'healthy');
  const share = (picks = 4_000): number => {
    let n = 0;
    for (let i = 0; i < picks; i++) if (pickEndpoint(group, false, { exclude: null, sawFull: false }) === a) n++;
    return (n * 100) / picks;
  };
  t.ok(Math.abs(share() - 50) < 6, 'two healthy endpoints share evenly');

  for (let i = 0; i < 3; i++) a.health.checkFailed('status-503', 1);
  t.equal(a.health.state, 'unhealthy');
  t.equal(share(), 0, 'a down endpoint gets nothing');
  a.health.checkPassed(1);
  a.health.checkPassed(1);
  t.equal(a.health.state, 'healthy');
  t.ok(a.health.rampUntil > Date.now(), 'recovery starts a ramp');
  const early = share();
  t.ok(early < 20, `just after recovery it gets ${early}% (want < 20)`);
  a.health.rampUntil = Date.now() + a.health.rampMs / 2;
  const half = share();
  t.ok(half > early && half < 45, `half way through the ramp it gets ${half}%`);
  a.health.rampUntil = Date.now() - 1;
  t.ok(Math.abs(share() - 50) < 6, 'after the ramp it is back to its full share');
  t.equal(a.health.rampUntil, 0, 'the finished ramp is cleared');
});
