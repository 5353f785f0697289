import { mkdtemp, open, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { getJson, send } from './helpers/client.js';
import { simpleRoutes, startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { runCli, spawnMeridian } from './helpers/process.js';
import { startUpstream } from './helpers/upstream.js';

interface State {
  revision: number;
  source: string;
  errors: { key: string; message: string }[];
}

async function snapshotRevision(m: TestMeridian): Promise<number> {
  await m.meridian.applier.flush();
  return (JSON.parse(await readFile(join(m.dir, 'last-good.json'), 'utf8')) as { revision: number }).revision;
}

/** Waits until the applier has handled a change that shows `pattern` in the state errors. */
async function refused(m: TestMeridian, pattern: RegExp): Promise<State> {
  return waitFor(async () => {
    const s = await getJson<State>(m.adminPort, '/api/v1/state');
    return s.errors.some((e) => pattern.test(`${e.key}: ${e.message}`)) ? s : null;
  }, `an error matching ${pattern}`);
}

/** A table whose routes name their service through one YAML anchor, used `uses` times. */
function aliasedTable(port: number, uses: number): string {
  const routes = Array.from({ length: uses }, (_, i) => `  r${i}: { hosts: [h${i}.test], service: ${i === 0 ? '&svc web' : '*svc'} }`);
  return [
    'regions: { eu-west: { location: { lat: 0, lon: 0 } } }',
    `services: { web: { versions: { stable: { endpoints: { eu-west: ["127.0.0.1:${port}"] } } } } }`,
    'routes:',
    ...routes,
    '',
  ].join('\n');
}

/** YAML whose aliases nest ten deep: a few hundred bytes that expand to 10^10 values. */
const ALIAS_BOMB = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...'bcdefghij'.split('').map((c, i) => `${c}: &${c} [${Array(10).fill(`*${'abcdefghij'[i]}`).join(', ')}]`), 'routes: {}'].join('\n');

t.test('an empty, comment-only or routes-less file is refused: the table in force and the snapshot stay', async (t) => {
  const up = await startUpstream('a');
  const m = await startTestMeridian(simpleRoutes({ 'eu-west': [up.address] }));
  t.teardown(async () => {
    await m.close();
    await up.kill();
  });
  t.equal(await snapshotRevision(m), 1);
  const cases: [string, string, RegExp][] = [
    ['empty', '', /the routing table is empty/],
    ['comment-only', '# nothing here yet\n', /the routing table is empty/],
    ['no routes section', stringify({ regions: { 'eu-west': { location: { lat: 0, lon: 0 } } } }), /routes: missing: a routing table needs a routes section/],
  ];
  for (const [what, text, why] of cases) {
    await m.writeRoutes(text);
    await refused(m, why);
    t.equal((await send(m.port)).status, 200, `${what}: the table in force keeps serving`);
    t.equal(await snapshotRevision(m), 1, `${what}: the snapshot is not overwritten`);
    await m.writeRoutes(simpleRoutes({ 'eu-west': [up.address] }));
    await waitFor(async () => (await getJson<State>(m.adminPort, '/api/v1/state')).errors.length === 0, 'the good file to be back');
  }
  t.match((await send(m.adminPort, { path: '/metrics' })).text, /meridian_config_rejected_total\{source="file",reason="empty"\} 3/);
});

t.test('a writer that truncates then writes (no atomic rename) never exposes an empty or partial table', async (t) => {
  const a = await startUpstream('a');
  const b = await startUpstream('b');
  const m = await startTestMeridian(simpleRoutes({ 'eu-west': [a.address] }));
  t.teardown(async () => {
    await m.close();
    await a.kill();
    await b.kill();
  });
  let stop = false;
  const statuses = new Map<number, number>();
  const traffic = (async () => {
    while (!stop) {
      const status = (await send(m.port)).status;
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  })();
  for (let i = 0; i < 12; i++) {
    const target = i % 2 === 0 ? b : a;
    // Open with O_TRUNC, then write after a pause (none, shorter and longer than the settle time): the file is empty meanwhile.
    const file = await open(m.routesFile, 'w');
    await new Promise((resolve) => setTimeout(resolve, [0, 40, 150][i % 3]));
    await file.writeFile(stringify(simpleRoutes({ 'eu-west': [target.address] })));
    await file.close();
    await waitFor(async () => (await send(m.port)).headers['x-upstream'] === (i % 2 === 0 ? 'b' : 'a'), `save ${i} to apply`);
  }
  stop = true;
  await traffic;
  t.same([...statuses.keys()], [200], `every request was served (${JSON.stringify([...statuses])})`);
  t.match((await send(m.adminPort, { path: '/metrics' })).text, /meridian_config_rejected_total\{source="file",reason="empty"\} [1-9]/, 'the empty file seen during the longer pauses was refused');
});

t.test('YAML aliases: an anchor used hundreds of times is fine; an alias bomb is a clear error and nothing crashes', async (t) => {
  const up = await startUpstream('a');
  const m = await startTestMeridian(aliasedTable(up.port, 150));
  t.teardown(async () => {
    await m.close();
    await up.kill();
  });
  t.equal(m.meridian.applier.current?.routes.size, 150, 'a table using one anchor 150 times applies');
  t.equal((await send(m.port, { headers: { host: 'h149.test' } })).status, 200);
  await m.writeRoutes(ALIAS_BOMB);
  const s = await refused(m, /expands to more than 5,000,000 values/);
  t.equal(s.revision, 1, 'the table in force stays');
  t.equal((await send(m.port, { headers: { host: 'h0.test' } })).status, 200, 'and serves');

  const dir = await mkdtemp(join(tmpdir(), 'meridian-alias-'));
  const bomb = join(dir, 'bomb.yaml');
  await writeFile(bomb, ALIAS_BOMB);
  const validated = await runCli(['validate', bomb]);
  t.equal(validated.code, 1);
  t.match(validated.stderr, /bomb\.yaml: the document expands to more than 5,000,000 values/);
  t.notMatch(validated.stderr, /\n\s+at /, 'no stack trace');
  const unresolved = join(dir, 'unresolved.yaml');
  await writeFile(unresolved, 'routes: *nowhere\n');
  t.match((await runCli(['validate', unresolved])).stderr, /unresolved\.yaml.*invalid YAML/, 'an alias with no anchor is a syntax error');
  const tagged = join(dir, 'tagged.yaml');
  await writeFile(tagged, 'regions: {}\nservices: {}\nroutes: !custom {}\n');
  const tag = await runCli(['validate', tagged]);
  t.equal(tag.code, 1, 'an unknown tag is refused, not read as a plain value');
  t.match(tag.stderr, /tagged\.yaml:3:9: invalid YAML: Unresolved tag: !custom/);
});

t.test('boot on an unusable file: the last-good snapshot serves; without one, a clear error and exit 1', async (t) => {
  const up = await startUpstream('a');
  t.teardown(() => up.kill());
  const dir = await mkdtemp(join(tmpdir(), 'meridian-boot-'));
  const routes = join(dir, 'routes.yaml');
  const conf = join(dir, 'meridian.yaml');
  await writeFile(conf, stringify({ proxy: { listen: '127.0.0.1:0' }, admin: { listen: '127.0.0.1:0' }, store: { file: routes, snapshot: join(dir, 'snap.json') } }));

  await writeFile(routes, ALIAS_BOMB);
  const refusedStart = await runCli(['start', '--config', conf, '--log-level', 'silent']);
  t.equal(refusedStart.code, 1, 'no snapshot: the start stops');
  t.match(refusedStart.stderr, /routes\.yaml: the document expands to more than/);
  t.notMatch(refusedStart.stderr, /\n\s+at /, 'no stack trace');

  await writeFile(routes, stringify(simpleRoutes({ 'eu-west': [up.address] })));
  const first = await spawnMeridian(['start', '--config', conf]);
  t.equal((await send(first.proxyPort)).status, 200);
  await waitFor(async () => (await readFile(join(dir, 'snap.json'), 'utf8').catch(() => '')).includes('"revision":1'), 'the snapshot');
  t.equal(await first.stop(), 0);

  await writeFile(routes, ALIAS_BOMB);
  const second = await spawnMeridian(['start', '--config', conf]);
  t.teardown(() => second.stop('SIGKILL'));
  const state = await getJson<State>(second.adminPort, '/api/v1/state');
  t.equal(state.source, 'snapshot', 'the snapshot serves');
  t.match(state.errors[0]?.message, /expands to more than/, 'and the reason the file was refused is shown');
  t.equal((await send(second.proxyPort)).status, 200);
  t.equal(await second.stop(), 0);
});

t.test('a large reload is parsed off the event loop: requests keep being answered while it is read', async (t) => {
  const up = await startUpstream('a');
  const m = await startTestMeridian(simpleRoutes({ 'eu-west': [up.address] }));
  t.teardown(async () => {
    await m.close();
    await up.kill();
  });
  const big = simpleRoutes({ 'eu-west': [up.address] }) as { services: Record<string, unknown>; routes: Record<string, unknown> };
  for (let i = 0; i < 4_000; i++) {
    big.services[`s${i}`] = { healthCheck: { interval: '1m', timeout: '1s' }, versions: { stable: { endpoints: { 'eu-west': [`127.0.0.1:${20_000 + (i % 20_000)}`] } } } };
    big.routes[`r${i}`] = { hosts: [`s${i}.test`], service: `s${i}` };
  }
  let answered = 0;
  let applied = false;
  const during = (async () => {
    while (!applied) {
      if ((await send(m.port)).status === 200 && !applied) answered++;
    }
  })();
  await m.writeRoutes(big);
  await waitFor(() => m.meridian.applier.current?.routes.size === 4_001, 'the large table to apply', 60_000, 20);
  applied = true;
  await during;
  t.ok(answered > 0, `requests were answered while the file was parsed and compiled (${answered})`);
  t.equal((await send(m.port, { headers: { host: 's3999.test' } })).status, 502, 'the new table routes (its endpoints are not listening)');
});
