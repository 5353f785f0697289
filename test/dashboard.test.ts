import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { Page } from 'puppeteer-core';
import { launchBrowser, textOf, watchedPage } from './helpers/browser.js';
import { send } from './helpers/client.js';
import { etcdFixture } from './helpers/etcd.js';
import { simpleRoutes, startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { spawnMeridian } from './helpers/process.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';

/** Where the screenshot of a live dashboard goes (outside the repository). */
const SCREENSHOT = '/tmp/meridian-dashboard.png';
const REGIONS = ['eu-west', 'us-east', 'ap-south'];
/** Fast checks, so a killed upstream shows down within a few seconds. */
const FAST_CHECKS = { healthCheck: { path: '/healthz', interval: '250ms', timeout: '200ms', healthyThreshold: 1, unhealthyThreshold: 1 } };

/** One upstream per demo region behind a test Meridian, with a canary version in eu-west. */
async function startRegions(t: Test, admin: Record<string, unknown> = {}): Promise<{ m: TestMeridian; ups: Record<string, TestUpstream> }> {
  const ups: Record<string, TestUpstream> = {};
  for (const region of REGIONS) ups[region] = await startUpstream(region);
  const canary = await startUpstream('canary');
  const routes = simpleRoutes(Object.fromEntries(REGIONS.map((r) => [r, [(ups[r] as TestUpstream).address]])), FAST_CHECKS) as { services: { web: Record<string, unknown> } };
  routes.services.web.versions = {
    stable: { endpoints: Object.fromEntries(REGIONS.map((r) => [r, [(ups[r] as TestUpstream).address]])) },
    canary: { endpoints: { 'eu-west': [canary.address] } },
  };
  routes.services.web.split = { weights: { stable: 90, canary: 10 } };
  const m = await startTestMeridian(routes, { admin });
  t.teardown(async () => {
    await m.close();
    for (const up of [...Object.values(ups), canary]) await up.kill().catch(() => undefined);
  });
  return { m, ups };
}

/** Waits until the page has drawn a state (the body says live) and every region's card is there. */
async function waitForRegions(page: Page): Promise<string[]> {
  return waitFor(
    async () => {
      const names = await page.$$eval('#regions [data-region] h3', (nodes) => nodes.map((n) => n.textContent ?? ''));
      return REGIONS.every((r) => names.includes(r)) ? names : null;
    },
    'the region cards',
    10_000,
    100,
  );
}

t.test('the dashboard shows regions, a live request rate and a dead endpoint, without a single browser error', async (t) => {
  const { m, ups } = await startRegions(t);
  const browser = await launchBrowser(t);
  const { page, problems } = await watchedPage(browser);
  const response = await page.goto(`http://127.0.0.1:${m.adminPort}/`, { waitUntil: 'load' });
  t.equal(response?.status(), 200);
  t.same((await waitForRegions(page)).sort(), [...REGIONS].sort(), 'every region has a card');
  t.equal(await textOf(page, '#node-name'), 'test-node');
  t.equal(await textOf(page, '#node-source'), 'file');

  // Traffic while the page polls: the service row shows a rate above zero.
  const statuses = new Set<number>();
  const rate = await waitFor(
    async () => {
      for (let i = 0; i < 10; i++) statuses.add((await send(m.port, { path: '/' })).status);
      const shown = Number.parseFloat((await textOf(page, '#services tr.service[data-service="web"] td.rate')) ?? '');
      return shown > 0 ? shown : null;
    },
    'a non-zero request rate',
    15_000,
    200,
  );
  t.ok(rate > 0, `the service row shows ${rate} req/s`);
  t.same([...statuses], [200], 'the traffic was served');
  const split = await page.$$eval('#services tr[data-version] td:nth-child(3)', (cells) => cells.map((c) => c.textContent ?? '').filter((s) => s !== ''));
  t.same(split.sort(), ['10%', '90%'], 'the split weights per version');

  const victim = ups['us-east'] as TestUpstream;
  const row = `#endpoints tr[data-endpoint="${victim.address}"]`;
  t.equal(await textOf(page, `${row} td.health`), 'up');
  await victim.kill();
  const down = await waitFor(
    async () => {
      const health = await textOf(page, `${row} td.health`);
      return health === 'down' ? { health, reason: await textOf(page, `${row} td.reason`) } : null;
    },
    'the killed endpoint shown down',
    8_000,
    100,
  );
  t.match(down.reason, /connect-refused|reset|refused/, `with its reason (${down.reason})`);
  t.equal(await page.$eval('#regions [data-region="us-east"] .count', (n) => n.textContent), '0/1 endpoints up', 'its region shows 0 of 1 up');

  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  t.same(problems.all(), [], 'no console errors, page errors or failed requests');

  // Narrow screens: the page reflows, wide tables scroll in their own box.
  await page.setViewport({ width: 390, height: 800 });
  const overflow = await waitFor(() => page.$eval('html', (html) => ({ width: html.scrollWidth, viewport: html.clientWidth })), 'the layout');
  t.ok(overflow.width <= overflow.viewport, `nothing is wider than a 390px screen (${overflow.width}px)`);
});

t.test('text from the routing table is shown as text, never parsed as HTML', async (t) => {
  const up = await startUpstream('x');
  t.teardown(() => up.kill());
  const m = await startTestMeridian(simpleRoutes({ 'eu-west': [up.address] }));
  t.teardown(() => m.close());
  // Names are restricted, but a refused change quotes what it was given in its errors.
  const bad = '<img src=x onerror=alert(1)>';
  await m.writeRoutes({ ...simpleRoutes({ 'eu-west': [up.address] }), services: { [bad]: { versions: { stable: { endpoints: { 'eu-west': [up.address] } } } } } });
  const browser = await launchBrowser(t);
  const { page, problems } = await watchedPage(browser);
  await page.goto(`http://127.0.0.1:${m.adminPort}/`, { waitUntil: 'load' });
  const shown = await waitFor(async () => ((await textOf(page, '#errors')) ?? '').includes(bad) && textOf(page, '#history'), 'the refused change', 10_000, 100);
  t.match(shown, bad, 'the history quotes the name as written');
  t.equal(await page.$$eval('main img', (imgs) => imgs.length), 0, 'and no element was made of it');
  t.same(problems.all(), []);
});

t.test('polling that fails shows a banner that goes away by itself', async (t) => {
  const { m } = await startRegions(t);
  const relay = await startTcpProxy(m.adminPort);
  t.teardown(() => relay.close());
  const browser = await launchBrowser(t);
  const { page } = await watchedPage(browser);
  await page.goto(`${relay.url}/`, { waitUntil: 'load' });
  await waitForRegions(page);
  t.equal(await page.$eval('#banner', (b) => b.hidden), true, 'no banner while polls succeed');
  relay.cut();
  const banner = await waitFor(async () => ((await page.$eval('#banner', (b) => b.hidden)) ? null : textOf(page, '#banner')), 'the connection-lost banner', 10_000, 100);
  t.match(banner, /^Connection lost/);
  relay.restore();
  await waitFor(() => page.$eval('#banner', (b) => b.hidden), 'the banner to go once polls succeed again', 10_000, 100);
  t.equal(await page.$eval('body', (body) => body.getAttribute('data-state')), 'live');
});

t.test('with admin.token: the page is 401 with a Basic challenge, and works once the browser sends the token', async (t) => {
  const token = 's3cret-token';
  const { m } = await startRegions(t, { token });
  const refused = await send(m.adminPort, { path: '/' });
  t.equal(refused.status, 401);
  t.match(refused.headers['www-authenticate'], /^Basic realm="meridian-admin"/, 'a challenge a browser answers with a prompt');
  const browser = await launchBrowser(t);
  const { page: anonymous } = await watchedPage(browser);
  // Headless Chromium has nobody to prompt: it gives up on the challenge.
  const navigation = await anonymous.goto(`http://127.0.0.1:${m.adminPort}/`, { waitUntil: 'load' }).then((res) => `status ${res?.status()}`, (err: Error) => err.message);
  t.match(navigation, /status 401|ERR_INVALID_AUTH_CREDENTIALS/, `a browser without the token does not get the page (${navigation})`);
  await anonymous.close();

  const { page, problems } = await watchedPage(browser);
  await page.authenticate({ username: 'ops', password: token });
  const response = await page.goto(`http://127.0.0.1:${m.adminPort}/`, { waitUntil: 'load' });
  t.equal(response?.status(), 200);
  t.same((await waitForRegions(page)).sort(), [...REGIONS].sort(), 'the state API answered the page with the same credentials');
  await waitFor(async () => (await textOf(page, '#services tr.service td.rate')) !== '–', 'a traffic interval', 10_000, 100);
  t.same(
    problems.all().filter((p) => !p.endsWith(': 401')),
    [],
    'nothing failed (the first 401 is the challenge the browser answers)',
  );
});

t.test('etcd mode: the fleet and a held-back key', async (t) => {
  const { etcd, client, up } = await etcdFixture(t, 'eu');
  const prefix = '/meridian/';
  await client.put(`${prefix}regions/eu-west`).value(JSON.stringify({ location: { lat: 53.35, lon: -6.26 } }));
  await client.put(`${prefix}services/web`).value(JSON.stringify({ ...FAST_CHECKS, versions: { stable: { endpoints: { 'eu-west': [up.address] } } } }));
  await client.put(`${prefix}routes/web`).value(JSON.stringify({ service: 'web' }));
  // Another node of the fleet, as it would publish itself.
  await client.put(`${prefix}nodes/edge-nyc-1`).value(JSON.stringify({ node: 'edge-nyc-1', region: 'us-east', revision: 3, updatedAt: new Date().toISOString(), endpoints: { [up.address]: { up: true, state: 'healthy', reason: 'ok', since: new Date().toISOString() } } }));
  const m = await startTestMeridian({}, { store: { file: undefined, etcd: { endpoints: [etcd.url], prefix, startupTimeout: '5s' } } });
  t.teardown(() => m.close());
  const browser = await launchBrowser(t);
  const { page, problems } = await watchedPage(browser);
  await page.goto(`http://127.0.0.1:${m.adminPort}/`, { waitUntil: 'load' });
  const nodes = await waitFor(
    async () => {
      const names = await page.$$eval('#fleet tr[data-node] td:first-child', (cells) => cells.map((c) => c.textContent ?? ''));
      return names.length === 2 ? names.sort() : null;
    },
    'both nodes in the fleet table',
    10_000,
    100,
  );
  t.same(nodes, ['edge-nyc-1', 'test-node'], 'this node and the other one');
  t.equal(await textOf(page, '#fleet tr[data-node="edge-nyc-1"] td:nth-child(4)'), '1/1');
  t.equal(await textOf(page, '#node-source'), 'etcd');
  // A paused rollout (nothing moves it) and a rollout key that is no rollout.
  const status = { state: 'paused', step: 0, stepStartedAt: new Date().toISOString(), reason: 'paused by an operator', history: [] };
  await client.put(`${prefix}rollouts/web`).value(JSON.stringify({ from: 'stable', to: 'canary', steps: [10, 100], status }));
  await client.put(`${prefix}rollouts/api`).value('{"from": "a"');
  const row = await waitFor(async () => textOf(page, '#rollouts tr[data-rollout="web"]'), 'the rollout row', 10_000, 100);
  t.match(row, /stable → canary/);
  t.match(row, /paused/);
  t.match(row, /1\/2 · 10 %/);
  t.match(row, /paused by an operator/);
  const broken = await waitFor(async () => ((await textOf(page, '#errors')) ?? '').includes('/meridian/rollouts/api') && textOf(page, '#errors'), 'the broken rollout key among the problems', 10_000, 100);
  t.match(broken, /not valid JSON/);
  await client.delete().key(`${prefix}rollouts/api`);
  await client.put(`${prefix}services/web`).value('{"versions": {}}');
  const refused = await waitFor(async () => ((await textOf(page, '#history li.rejected')) ?? '').includes('/meridian/services/web') && textOf(page, '#history li.rejected'), 'the held-back key in the history', 10_000, 100);
  t.match(refused, /rejected etcd/);
  t.match(await textOf(page, '#errors'), '/meridian/services/web', 'and in the problems standing');
  t.same(problems.all(), []);
});

t.test('meridian demo (the quick start) serves a dashboard showing the demo regions', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-dash-demo-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  cpSync('config', join(dir, 'config'), { recursive: true });
  const proc = await spawnMeridian(['demo', '--config', 'config/meridian.yaml', '--listen', '127.0.0.1:0', '--tls-listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--dns-listen', '127.0.0.1:0'], { cwd: dir });
  t.teardown(() => proc.stop('SIGKILL'));
  const browser = await launchBrowser(t);
  const { page, problems } = await watchedPage(browser);
  await page.goto(`http://127.0.0.1:${proc.adminPort}/`, { waitUntil: 'load' });
  t.same((await waitForRegions(page)).sort(), [...REGIONS].sort(), 'the demo regions');
  t.equal(await textOf(page, '#node-name'), 'edge-lon-1 (eu-west)');
  await waitFor(async () => ((await page.$$('#services tr.service')).length >= 2 ? true : null), 'the demo services', 10_000, 100);
  t.same(problems.all(), []);
  t.equal(await proc.stop('SIGINT'), 0);
});
