import { AggregatorRegistry } from 'prom-client';
import t from 'tap';
import { Metrics } from '../src/observability/metrics.js';

/** The value of one exported line, by metric name and label text (`le="0.005",route="r",...`). */
function line(text: string, name: string, labels: string): number {
  const found = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return found === undefined ? Number.NaN : Number(found.slice(found.lastIndexOf(' ') + 1));
}

t.test('request durations: cumulative buckets with inclusive bounds, sum and count per series; removed routes stop being exported', async (t) => {
  const m = new Metrics({ defaultMetrics: false });
  const s = m.series({ route: 'r', service: 's', version: 'v', region: 'g' });
  for (const seconds of [0.0005, 0.005, 0.007, 3]) s.observe(200, seconds);
  s.observe(502, 0.2);
  const text = await m.registry.metrics();
  const labels = (le: string, cls = '2xx'): string => `le="${le}",route="r",service="s",version="v",region="g",status_class="${cls}"`;
  const name = 'meridian_request_duration_seconds';
  t.equal(line(text, `${name}_bucket`, labels('0.001')), 1);
  t.equal(line(text, `${name}_bucket`, labels('0.005')), 2, 'a value equal to a bound is in that bucket (le)');
  t.equal(line(text, `${name}_bucket`, labels('0.01')), 3);
  t.equal(line(text, `${name}_bucket`, labels('2.5')), 3);
  t.equal(line(text, `${name}_bucket`, labels('5')), 4);
  t.equal(line(text, `${name}_bucket`, labels('+Inf')), 4);
  t.equal(line(text, `${name}_count`, 'route="r",service="s",version="v",region="g",status_class="2xx"'), 4);
  t.ok(Math.abs(line(text, `${name}_sum`, 'route="r",service="s",version="v",region="g",status_class="2xx"') - 3.0125) < 1e-9);
  t.equal(line(text, `${name}_bucket`, labels('0.25', '5xx')), 1, 'each status class is a series of its own');

  m.retainRoutes(new Set(['other']));
  t.notMatch(await m.registry.metrics(), /route="r"/, 'a removed route leaves no series');
});

t.test("a node's workers add up: durations and counts aggregate across registries", async (t) => {
  const a = new Metrics({ defaultMetrics: false });
  const b = new Metrics({ defaultMetrics: false });
  a.series({ route: 'r', service: 's', version: 'v', region: 'g' }).observe(200, 0.003);
  b.series({ route: 'r', service: 's', version: 'v', region: 'g' }).observe(200, 0.02);
  a.configRevision.set(7);
  b.configRevision.set(6);
  const text = await AggregatorRegistry.aggregate([await a.registry.getMetricsAsJSON(), await b.registry.getMetricsAsJSON()]).metrics();
  t.equal(line(text, 'meridian_request_duration_seconds_count', 'route="r",service="s",version="v",region="g",status_class="2xx"'), 2);
  t.equal(line(text, 'meridian_request_duration_seconds_bucket', 'le="0.005",route="r",service="s",version="v",region="g",status_class="2xx"'), 1);
  t.equal(line(text, 'meridian_requests_total', 'route="r",service="s",version="v",region="g",status_class="2xx"'), 2);
  t.match(text, /meridian_config_revision 6\n/, 'the revision is the lowest any process serves');
});
