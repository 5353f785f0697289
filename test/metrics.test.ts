import { AggregatorRegistry, Gauge, Registry } from 'prom-client';
import t from 'tap';
import { Metrics } from '../src/observability/metrics.js';
import { aggregateNode } from '../src/observability/node-metrics.js';

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

t.test("Node's runtime metrics under their standard names; Meridian's own stay meridian_*", async (t) => {
  const m = new Metrics({ defaultMetrics: true });
  const text = await m.registry.metrics();
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
    t.match(text, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is exported`);
  }
  t.notMatch(text, /meridian_process_|meridian_nodejs_/, 'no runtime metric carries the meridian_ prefix');
  t.match(text, /^meridian_build_info\{version="[^"]+",node="v\d+\.\d+\.\d+"\} 1$/m);
});

t.test('etcd, TLS and ACME series exist only once a part asks for them', async (t) => {
  const m = new Metrics({ defaultMetrics: false });
  t.notMatch(await m.registry.metrics(), /meridian_(etcd|tls|acme)_/);
  t.equal(m.etcd, m.etcd, 'each group is registered once');
  m.etcd.connected.set(1);
  m.acme.orders.inc({ result: 'issued' });
  m.tls.handshakeErrors.inc({ reason: 'ECONNRESET' });
  const text = await m.registry.metrics();
  t.match(text, /^meridian_etcd_connected 1$/m);
  t.match(text, /^meridian_acme_orders_total\{result="issued"\} 1$/m);
  t.match(text, /^meridian_tls_handshake_errors_total\{reason="ECONNRESET"\} 1$/m);
});

t.test('certificate expiry: seconds left per name, the soonest of several, gone with its certificate, the soonest over workers', async (t) => {
  const day = 86_400_000;
  const a = new Metrics({ defaultMetrics: false });
  let served: [string, Date][] = [
    ['a.example', new Date(Date.now() + 10 * day)],
    ['b.example', new Date(Date.now() + 5 * day)],
    ['c.example', new Date(Date.now() + 9 * day)],
  ];
  a.tls.watchCertificates(() => served);
  a.tls.watchCertificates(() => [['a.example', new Date(Date.now() + 2 * day)]]);
  let text = await a.registry.metrics();
  const seconds = (text: string, name: string): number => line(text, 'meridian_tls_certificate_expiry_seconds', `name="${name}"`);
  t.ok(Math.abs(seconds(text, 'a.example') - 2 * 86_400) <= 2, 'two certificates for one name: the sooner expiry');
  t.ok(Math.abs(seconds(text, 'b.example') - 5 * 86_400) <= 2);
  served = [['b.example', new Date(Date.now() - day)]];
  text = await a.registry.metrics();
  t.ok(seconds(text, 'b.example') < -86_000, 'negative once expired');
  t.notMatch(text, /c\.example/, 'a certificate no longer served has no series');
  const b = new Metrics({ defaultMetrics: false });
  b.tls.watchCertificates(() => [['b.example', new Date(Date.now() - 3 * day)]]);
  const node = await AggregatorRegistry.aggregate([await a.registry.getMetricsAsJSON(), await b.registry.getMetricsAsJSON()]).metrics();
  t.ok(seconds(node, 'b.example') < -3 * 86_000, 'with workers, the soonest any process serves');
});

t.test('table gauges: read from the table source at each scrape; nothing without one', async (t) => {
  const m = new Metrics({ defaultMetrics: false });
  t.notMatch(await m.registry.metrics(), /^meridian_endpoint_up\{/m, 'no source (a worker): no series');
  let endpoints = [
    { service: 's', version: 'v', region: 'r', endpoint: '10.0.0.1:80', up: true, drained: false },
    { service: 's', version: 'v', region: 'r', endpoint: 'https://10.0.0.2:443', up: false, drained: true },
  ];
  m.table.watch({ endpoints: () => endpoints, versions: () => [{ service: 's', version: 'v', weight: 7 }] });
  let text = await m.registry.metrics();
  t.equal(line(text, 'meridian_endpoint_up', 'service="s",version="v",region="r",endpoint="10.0.0.1:80"'), 1);
  t.equal(line(text, 'meridian_endpoint_up', 'service="s",version="v",region="r",endpoint="https://10.0.0.2:443"'), 0);
  t.equal(line(text, 'meridian_endpoint_drained', 'service="s",version="v",region="r",endpoint="https://10.0.0.2:443"'), 1);
  t.equal(line(text, 'meridian_version_weight', 'service="s",version="v"'), 7);
  endpoints = endpoints.slice(0, 1);
  text = await m.registry.metrics();
  t.notMatch(text, /10\.0\.0\.2/, 'an endpoint that left has no series');
});

t.test("a node's start time and open-file limit are its primary's; its CPU and memory are summed over its processes", async (t) => {
  const registry = (start: number, rss: number): Registry => {
    const r = new Registry();
    new Gauge({ name: 'process_start_time_seconds', help: 'start', registers: [r], aggregator: 'omit' }).set(start);
    new Gauge({ name: 'process_max_fds', help: 'limit', registers: [r] }).set(1024);
    new Gauge({ name: 'process_resident_memory_bytes', help: 'rss', registers: [r] }).set(rss);
    return r;
  };
  const text = await aggregateNode(await registry(100, 10).getMetricsAsJSON(), [await registry(200, 20).getMetricsAsJSON(), await registry(300, 30).getMetricsAsJSON()]).metrics();
  t.match(text, /^process_start_time_seconds 100$/m, "the primary's start time, not left out");
  t.match(text, /^process_max_fds 1024$/m, 'the limit of one process, not a sum of limits');
  t.match(text, /^process_resident_memory_bytes 60$/m, 'memory summed over the processes');
});
