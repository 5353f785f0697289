import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import t, { type Test } from 'tap';
import { parse, stringify } from 'yaml';
import { makeCa, makeCert } from './helpers/certs.js';
import { send } from './helpers/client.js';
import { rawQuery, udpExchange } from './helpers/dns-raw.js';
import { startEtcd } from './helpers/etcd.js';
import { waitFor } from './helpers/poll.js';
import { ROOT, spawnMeridian } from './helpers/process.js';
import { startUpstream } from './helpers/upstream.js';

const ALERTS = join(ROOT, 'deploy/prometheus/alerts.yml');
const ALERT_TESTS = join(ROOT, 'deploy/prometheus/alerts.test.yml');
const DASHBOARD = join(ROOT, 'deploy/grafana/meridian.json');

/** Runs promtool (installed by test/setup/tools.sh) and resolves with its exit code and everything it printed. */
function promtool(args: readonly string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile('promtool', args, { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, output: `${stdout}${stderr}${err !== null && typeof err.code !== 'number' ? err.message : ''}` });
    });
  });
}

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

interface Panel {
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: { expr: string; refId: string }[];
}

interface Dashboard {
  schemaVersion: number;
  templating: { list: { name: string; type: string; query: string | { query: string } }[] };
  panels: Panel[];
}

const rules = (): Rule[] => (parse(readFileSync(ALERTS, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const dashboard = (): Dashboard => JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const variableQuery = (v: Dashboard['templating']['list'][number]): string => (typeof v.query === 'string' ? v.query : v.query.query);

/** A panel expression as Prometheus would get it: template variables replaced by what Grafana sends for "All". */
function substituted(expr: string): string {
  return expr.replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '1m').replace(/\$(instance|service|region)\b/g, '.*');
}

/** Names of Meridian's and Node's metrics an expression reads (Prometheus' own `up` aside). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b(?:meridian|process|nodejs)_[a-z0-9_]+\b/g)].map((m) => m[0]);
}

t.test('alerts.yml: promtool checks the rules and passes their unit tests; every alert has a firing and a quiet case', async (t) => {
  const check = await promtool(['check', 'rules', ALERTS]);
  t.equal(check.code, 0, `promtool check rules:\n${check.output}`);
  const unit = await promtool(['test', 'rules', ALERT_TESTS]);
  t.equal(unit.code, 0, `promtool test rules:\n${unit.output}`);

  const alerts = rules().filter((r) => r.alert !== undefined);
  t.same([...new Set(alerts.map((r) => r.alert))].sort(), [
    'MeridianCanaryWorseThanStable', 'MeridianCertificateExpiring', 'MeridianConfigRejected', 'MeridianErrorRatioHigh', 'MeridianEtcdDisconnected', 'MeridianNodeDown', 'MeridianRegionDown',
  ]);
  for (const rule of alerts) {
    t.ok(rule.for !== undefined && ['warning', 'critical'].includes(rule.labels?.severity ?? ''), `${rule.alert} waits (for:) and has a severity`);
    t.ok((rule.annotations?.summary ?? '').includes('{{') && (rule.annotations?.description ?? '').length > 0, `${rule.alert} has a summary using labels and a description`);
  }
  const cases = (parse(readFileSync(ALERT_TESTS, 'utf8')) as { tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[] }).tests.flatMap((test) => test.alert_rule_test ?? []);
  for (const name of new Set(alerts.map((r) => r.alert as string))) {
    t.ok(cases.some((c) => c.alertname === name && c.exp_alerts.length > 0), `${name} has a case where it fires`);
    t.ok(cases.some((c) => c.alertname === name && c.exp_alerts.length === 0), `${name} has a case where it must not`);
  }
});

t.test('the Grafana dashboard: variables, one data source, and every expression valid PromQL (promtool check rules)', async (t) => {
  const dash = dashboard();
  t.ok(dash.schemaVersion >= 36, `schemaVersion ${dash.schemaVersion}`);
  const variables = new Map(dash.templating.list.map((v) => [v.name, v]));
  t.match(variables.get('datasource'), { type: 'datasource', query: 'prometheus' }, 'a datasource variable of Prometheus data sources');
  for (const name of ['instance', 'service', 'region']) t.equal(variables.get(name)?.type, 'query', `a ${name} variable`);
  const panels = dash.panels.filter((p) => p.type !== 'row');
  t.ok(panels.length >= 10, `${panels.length} panels`);
  const exprs: { record: string; expr: string }[] = [];
  for (const panel of panels) {
    t.equal(panel.datasource?.uid, '${datasource}', `${panel.title} reads the chosen data source`);
    t.ok((panel.targets ?? []).length > 0, `${panel.title} has a query`);
    for (const target of panel.targets ?? []) exprs.push({ record: `meridian:dashboard:${exprs.length}`, expr: substituted(target.expr) });
  }
  const dir = mkdtempSync(join(tmpdir(), 'meridian-dashboard-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'dashboard-rules.yml');
  writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules: exprs }] }));
  const check = await promtool(['check', 'rules', file]);
  t.equal(check.code, 0, `promtool check rules on the dashboard's expressions:\n${check.output}`);
  t.match(check.output, new RegExp(`SUCCESS: ${exprs.length} rules found`), 'every expression was checked');

  // The same check refuses an expression that is not PromQL, so the one above means something.
  writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules: [{ record: 'meridian:broken', expr: 'sum by (route (rate(meridian_requests_total[1m]))' }] }] }));
  t.not((await promtool(['check', 'rules', file])).code, 0, 'a broken expression fails the check');
});

/** Metric names a scrape exports: its families, and a histogram's _bucket, _sum and _count series. */
function exportedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string];
    names.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
  }
  for (const m of text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/gm)) names.add(m[1] as string);
  return names;
}

/** A node in etcd mode with GeoDNS and TLS, Node's runtime metrics on: every series Meridian has without ACME. */
async function fullNode(t: Test): Promise<{ adminPort: number; proxyPort: number; dnsPort: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-monitoring-'));
  const etcd = await startEtcd();
  const client = new Etcd3({ hosts: etcd.url });
  const up = await startUpstream('a');
  t.teardown(async () => {
    client.close();
    await up.kill();
    await etcd.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  const prefix = '/meridian/';
  await client.put(`${prefix}regions/eu-west`).value(JSON.stringify({ location: { lat: 53.35, lon: -6.26 }, edge: { ipv4: ['203.0.113.10'] } }));
  await client.put(`${prefix}services/web`).value(JSON.stringify({ split: { weights: { stable: 90, canary: 10 } }, versions: { stable: { endpoints: { 'eu-west': [up.address] } }, canary: { endpoints: { 'eu-west': [up.address] } } } }));
  await client.put(`${prefix}routes/web`).value(JSON.stringify({ hosts: ['www.example.com'], service: 'web' }));
  const ca = makeCa(dir);
  const config = join(dir, 'meridian.yaml');
  writeFileSync(config, stringify({
    node: { name: 'monitoring-test', region: 'eu-west' },
    proxy: { listen: '127.0.0.1:0', shutdownTimeout: '2s', tls: { listen: '127.0.0.1:0', certificates: [makeCert(dir, ca, 'www', ['www.example.com'])] } },
    admin: { listen: '127.0.0.1:0' },
    dns: { listen: '127.0.0.1:0', zones: [{ name: 'example.com', nameservers: ['ns1.example.com'] }] },
    store: { etcd: { endpoints: [etcd.url], prefix }, snapshot: join(dir, 'last-good.json') },
  }));
  const proc = await spawnMeridian(['start', '--config', config, '--log-level', 'info']);
  t.teardown(() => proc.stop('SIGKILL'));
  const dnsLine = proc.logs.find((l) => l.msg === 'dns listening') as { address: { port: number } } | undefined;
  if (dnsLine === undefined) throw new Error('the node did not log where GeoDNS listens');
  return { adminPort: proc.adminPort, proxyPort: proc.proxyPort, dnsPort: dnsLine.address.port };
}

t.test('every metric the alerts and the dashboard read is in the /metrics of a running node with etcd, GeoDNS and TLS', async (t) => {
  const node = await fullNode(t);
  await waitFor(async () => (await send(node.proxyPort, { headers: { host: 'www.example.com' } })).status === 200, 'the node to serve the etcd table', 15_000, 100);
  t.equal((await send(node.proxyPort, { headers: { host: 'nothing.invalid' } })).status, 404, 'a request no route matches (a Meridian error)');
  t.ok((await udpExchange(node.dnsPort, rawQuery({ questions: [{ type: 'A', name: 'www.example.com' }] }))).length > 0, 'GeoDNS answers');
  const text = await waitFor(async () => {
    const res = await send(node.adminPort, { path: '/metrics' });
    return /^meridian_etcd_connected 1$/m.test(res.text) ? res.text : null;
  }, 'etcd to be connected', 10_000, 100);
  const exported = exportedNames(text);

  const used = new Map<string, string>();
  for (const rule of rules()) for (const name of metricNames(rule.expr)) used.set(name, `alert ${rule.alert}`);
  const dash = dashboard();
  for (const panel of dash.panels) for (const target of panel.targets ?? []) for (const name of metricNames(target.expr)) used.set(name, `panel "${panel.title}"`);
  for (const v of dash.templating.list) if (v.type === 'query') for (const name of metricNames(variableQuery(v))) used.set(name, `variable ${v.name}`);
  t.ok(used.size >= 15, `${used.size} metric names are read`);
  for (const name of ['meridian_endpoint_up', 'meridian_version_weight', 'meridian_etcd_connected', 'meridian_dns_queries_total', 'meridian_tls_certificate_expiry_seconds', 'process_cpu_seconds_total']) {
    t.ok(used.has(name), `${name} is read by an alert or a panel`);
  }
  for (const [name, where] of [...used].sort()) t.ok(exported.has(name), `${name} (${where}) is exported`);
});
