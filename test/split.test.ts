import { rm } from 'node:fs/promises';
import { Agent } from 'node:http';
import t, { type Test } from 'tap';
import { BUCKETS, VersionSplit, type StickySource } from '../src/routing/split.js';
import { send, type TestResponse } from './helpers/client.js';
import { startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { compileClean, serviceOf } from './helpers/table.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';

interface TestVersion {
  readonly name: string;
  readonly weight: number;
}

const KEYS = 10_000;
const USER_HEADER: StickySource = { header: 'x-user-id' };

function splitOf(weights: Record<string, number>, salt = 'web', sticky: StickySource | null = USER_HEADER, override: string | null = null): VersionSplit<TestVersion> {
  return new VersionSplit<TestVersion>(salt, Object.entries(weights).map(([name, weight]) => ({ name, weight })), sticky, override);
}

/** The version a sticky user id lands on, through the same raw-header path requests take. */
function versionOfUser(split: VersionSplit<TestVersion>, key: string): string {
  const choice = split.choose(['X-User-Id', key]);
  return choice.version.name;
}

/** The users (out of `user-0` .. `user-9999`) that land on `version`. */
function usersOn(split: VersionSplit<TestVersion>, version: string): Set<string> {
  const out = new Set<string>();
  for (let i = 0; i < KEYS; i++) if (versionOfUser(split, `user-${i}`) === version) out.add(`user-${i}`);
  return out;
}

function percentOn(split: VersionSplit<TestVersion>, version: string): number {
  return (usersOn(split, version).size * 100) / KEYS;
}

/** The keys of `before` that are missing from `after`. */
function lost(before: ReadonlySet<string>, after: ReadonlySet<string>): string[] {
  return [...before].filter((k) => !after.has(k));
}

t.test('accuracy: the share of distinct sticky keys follows the weights', async (t) => {
  const canary10 = percentOn(splitOf({ stable: 90, canary: 10 }), 'canary');
  t.ok(Math.abs(canary10 - 10) <= 1.5, `90/10: canary gets ${canary10}% of 10,000 users (want 10 ± 1.5)`);
  const canary1 = percentOn(splitOf({ stable: 99, canary: 1 }), 'canary');
  t.ok(Math.abs(canary1 - 1) <= 0.5, `99/1: canary gets ${canary1}% of 10,000 users (want 1 ± 0.5)`);
  const permille = percentOn(splitOf({ stable: 995, canary: 5 }), 'canary');
  t.ok(Math.abs(permille - 0.5) <= 0.3, `995/5: canary gets ${permille}% (want 0.5 ± 0.3)`);
  const three = splitOf({ a: 20, b: 30, c: 50 });
  const shares = ['a', 'b', 'c'].map((v) => percentOn(three, v));
  t.ok(
    Math.abs((shares[0] as number) - 20) <= 2 && Math.abs((shares[1] as number) - 30) <= 2 && Math.abs((shares[2] as number) - 50) <= 2,
    `20/30/50 over three versions: got ${shares.join('/')} (each ± 2)`,
  );

  // Users hashed with another service's salt are a different population.
  const web = usersOn(splitOf({ stable: 90, canary: 10 }, 'web'), 'canary');
  const api = usersOn(splitOf({ stable: 90, canary: 10 }, 'api'), 'canary');
  const both = [...web].filter((k) => api.has(k)).length;
  t.ok(both < web.size / 2, `the canary users of two services differ (${both} of ${web.size} in common)`);

  // Without a sticky key every request draws a random bucket: the request share follows the weights.
  const random = splitOf({ stable: 90, canary: 10 }, 'web', null);
  let canary = 0;
  const draws = 20_000;
  for (let i = 0; i < draws; i++) if (random.choose([]).version.name === 'canary') canary++;
  t.ok(Math.abs((canary * 100) / draws - 10) <= 1.5, `no sticky key: ${(canary * 100) / draws}% of ${draws} requests on canary`);
  // A request without the sticky header is not pinned either.
  const headerless = splitOf({ stable: 50, canary: 50 });
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) seen.add(headerless.choose(['x-other', 'v']).version.name);
  t.same([...seen].sort(), ['canary', 'stable'], 'requests without the sticky header are spread over the versions');
});

t.test('bucket ranges cover every bucket and honour zero weights', async (t) => {
  const blue = splitOf({ blue: 100, green: 0 });
  const green = splitOf({ blue: 0, green: 100 });
  let onBlue = 0;
  let onGreen = 0;
  for (let b = 0; b < BUCKETS; b++) {
    if (blue.versionForBucket(b).name === 'blue') onBlue++;
    if (green.versionForBucket(b).name === 'green') onGreen++;
  }
  t.equal(onBlue, BUCKETS, 'blue 100 / green 0: every bucket is blue');
  t.equal(onGreen, BUCKETS, 'blue 0 / green 100: every bucket is green');
  const ninety = splitOf({ stable: 90, canary: 10 });
  let canaryBuckets = 0;
  for (let b = 0; b < BUCKETS; b++) if (ninety.versionForBucket(b).name === 'canary') canaryBuckets++;
  t.equal(canaryBuckets, 1_000, 'weights map to exact bucket counts (10% of 10,000)');
});

t.test('stickiness: the same key always lands on the same version while weights are unchanged', async (t) => {
  const split = splitOf({ stable: 50, canary: 50 });
  const first = new Map<string, string>();
  for (let i = 0; i < 1_000; i++) first.set(`user-${i}`, versionOfUser(split, `user-${i}`));
  let moved = 0;
  for (let round = 0; round < 5; round++) {
    for (const [key, version] of first) if (versionOfUser(split, key) !== version) moved++;
  }
  t.equal(moved, 0, 'repeat lookups of 1,000 keys never change version');
  // A table rebuilt with the same weights (a reload) keeps every key where it was.
  const rebuilt = splitOf({ canary: 50, stable: 50 });
  const movedOnRebuild = [...first].filter(([key, version]) => versionOfUser(rebuilt, key) !== version).length;
  t.equal(movedOnRebuild, 0, 'a rebuilt split with the same weights (any declaration order) keeps every key');
  t.same(new Set(first.values()), new Set(['stable', 'canary']), 'the keys do spread over both versions');
});

t.test('monotone growth: keys on a growing version stay on it', async (t) => {
  const steps = [5, 10, 25, 50];
  let before = usersOn(splitOf({ stable: 100 - (steps[0] as number), canary: steps[0] as number }), 'canary');
  t.ok(before.size > 0, `some users start on the canary (${before.size})`);
  for (const w of steps.slice(1)) {
    const after = usersOn(splitOf({ stable: 100 - w, canary: w }), 'canary');
    t.same(lost(before, after), [], `canary growing to ${w}/100 keeps all ${before.size} users it had`);
    t.ok(after.size > before.size, `and gains users (${before.size} -> ${after.size})`);
    before = after;
  }

  const permille5 = usersOn(splitOf({ stable: 995, canary: 5 }), 'canary');
  const permille10 = usersOn(splitOf({ stable: 990, canary: 10 }), 'canary');
  t.ok(permille5.size > 0, `some users start on a 5/1000 canary (${permille5.size})`);
  t.same(lost(permille5, permille10), [], 'total 1000: stable 995 / canary 5 -> 990 / 10 keeps the canary users');

  // The total may change too: canary grows while stable stays put.
  const fixedStable5 = usersOn(splitOf({ stable: 95, canary: 5 }), 'canary');
  const fixedStable10 = usersOn(splitOf({ stable: 95, canary: 10 }), 'canary');
  t.same(lost(fixedStable5, fixedStable10), [], 'stable 95 / canary 5 -> 95 / 10 (total 105) keeps the canary users');

  // A growing version whose name sorts after the shrinking one (its bucket range is at the top).
  const v2at5 = usersOn(splitOf({ stable: 95, v2: 5 }), 'v2');
  const v2at30 = usersOn(splitOf({ stable: 70, v2: 30 }), 'v2');
  t.ok(v2at5.size > 0, `some users start on v2 (${v2at5.size})`);
  t.same(lost(v2at5, v2at30), [], 'a version named after the stable one keeps its users when it grows');

  // Three versions: whichever one grows (the others shrinking) keeps all its keys.
  const plans: { grow: string; from: Record<string, number>; to: Record<string, number> }[] = [
    { grow: 'a', from: { a: 10, b: 30, c: 60 }, to: { a: 30, b: 20, c: 50 } },
    { grow: 'b', from: { a: 30, b: 10, c: 60 }, to: { a: 20, b: 30, c: 50 } },
    { grow: 'c', from: { a: 30, b: 30, c: 40 }, to: { a: 25, b: 20, c: 55 } },
    { grow: 'b', from: { a: 300, b: 5, c: 695 }, to: { a: 300, b: 50, c: 650 } },
  ];
  for (const { grow, from, to } of plans) {
    const a = usersOn(splitOf(from), grow);
    const b = usersOn(splitOf(to), grow);
    t.ok(a.size > 0 && b.size > a.size, `${grow} grows from ${a.size} to ${b.size} users`);
    t.same(lost(a, b), [], `three versions ${JSON.stringify(from)} -> ${JSON.stringify(to)}: ${grow} keeps its users`);
  }
});

t.test('the compiled split of a service is sticky and salted by the service name', async (t) => {
  const endpoints = (port: number) => ({ endpoints: { local: [`127.0.0.1:${port}`] } });
  const service = {
    split: { weights: { stable: 90, canary: 10 }, sticky: { header: 'X-User-Id' } },
    versions: { stable: endpoints(1001), canary: endpoints(1002) },
  };
  const table = compileClean({ regions: { local: { location: { lat: 0, lon: 0 } } }, services: { web: service, api: service } });
  const web = serviceOf(table, 'web').split;
  t.equal(web.sticky !== null && 'header' in web.sticky ? web.sticky.header : null, 'x-user-id', 'the sticky header name is lowercased at compile time');
  const direct = splitOf({ stable: 90, canary: 10 }, 'web');
  let differ = 0;
  for (let i = 0; i < 2_000; i++) {
    const key = `user-${i}`;
    if (web.choose(['x-user-id', key]).version.name !== versionOfUser(direct, key)) differ++;
  }
  t.equal(differ, 0, 'the compiled split agrees with a VersionSplit salted by the service name');
});

/** Starts stable and canary upstreams and a Meridian with debug headers serving `split` for service web. */
async function splitMeridian(t: Test, split: Record<string, unknown>, stableEndpoints?: unknown[]): Promise<{ m: TestMeridian; stable: TestUpstream; canary: TestUpstream; routes: (split: Record<string, unknown>) => unknown }> {
  const stable = await startUpstream('stable');
  const canary = await startUpstream('canary');
  const routes = (s: Record<string, unknown>): unknown => ({
    regions: { 'eu-west': { location: { lat: 53.35, lon: -6.26 } } },
    services: {
      web: {
        split: s,
        versions: {
          stable: { endpoints: { 'eu-west': stableEndpoints ?? [stable.address] } },
          canary: { endpoints: { 'eu-west': [canary.address] } },
        },
      },
    },
    routes: { web: { pathPrefix: '/', service: 'web' } },
  });
  const m = await startTestMeridian(routes(split), { proxy: { debugHeaders: true } });
  t.teardown(async () => {
    await m.close();
    await stable.kill();
    await canary.kill();
    await rm(m.dir, { recursive: true, force: true });
  });
  return { m, stable, canary, routes };
}

/** Which version answered, checked two ways: the debug header and the upstream's own label. */
function answeredBy(res: TestResponse): string {
  if (res.status !== 200) return `${res.status}:${String(res.headers['x-meridian-error'])}`;
  const version = String(res.headers['x-meridian-version']);
  const upstream = String(res.headers['x-upstream']);
  return version === upstream ? version : `mismatch:${version}/${upstream}`;
}

function keepAlive(t: Test): Agent {
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  t.teardown(() => agent.destroy());
  return agent;
}

t.test('sticky header through sockets: one user id, one version', async (t) => {
  const { m } = await splitMeridian(t, { weights: { stable: 50, canary: 50 }, sticky: { header: 'x-user-id' } });
  const agent = keepAlive(t);
  const versionsOf = async (user: string): Promise<string[]> => {
    const out: string[] = [];
    for (let i = 0; i < 20; i++) out.push(answeredBy(await send(m.port, { agent, headers: { 'x-user-id': user } })));
    return out;
  };
  const alice = await versionsOf('alice');
  t.ok(alice[0] === 'stable' || alice[0] === 'canary', `alice is served (${alice[0]})`);
  t.same(new Set(alice), new Set([alice[0]]), '20 requests with the same x-user-id land on one version');
  const bob = await versionsOf('user-42');
  t.same(new Set(bob), new Set([bob[0]]), 'and so do 20 requests of another user');

  const firstOfMany = new Set<string>();
  for (let i = 0; i < 40; i++) firstOfMany.add(answeredBy(await send(m.port, { agent, headers: { 'x-user-id': `u${i}` } })));
  t.same([...firstOfMany].sort(), ['canary', 'stable'], '40 different users are spread over both versions');
});

t.test('blue-green: weights 100/0 send everything to blue; flipping to 0/100 sends everything to green', async (t) => {
  const blue = await startUpstream('blue');
  const green = await startUpstream('green');
  const routes = (weights: Record<string, number>): unknown => ({
    regions: { 'eu-west': { location: { lat: 53.35, lon: -6.26 } } },
    services: {
      web: {
        split: { weights },
        versions: { blue: { endpoints: { 'eu-west': [blue.address] } }, green: { endpoints: { 'eu-west': [green.address] } } },
      },
    },
    routes: { web: { pathPrefix: '/', service: 'web' } },
  });
  const m = await startTestMeridian(routes({ blue: 100, green: 0 }), { proxy: { debugHeaders: true } });
  t.teardown(async () => {
    await m.close();
    await blue.kill();
    await green.kill();
    await rm(m.dir, { recursive: true, force: true });
  });
  const agent = keepAlive(t);
  const batch = async (n: number): Promise<Set<string>> => {
    const out = new Set<string>();
    for (let i = 0; i < n; i++) out.add(answeredBy(await send(m.port, { agent })));
    return out;
  };
  t.same([...(await batch(100))], ['blue'], 'blue 100 / green 0: 100 requests all on blue');
  t.equal(green.seen.length, 0, 'green got nothing');

  await m.writeRoutes(routes({ blue: 0, green: 100 }));
  await waitFor(async () => answeredBy(await send(m.port, { agent })) === 'green', 'the flip to green to reach the data plane');
  const blueBefore = blue.seen.length;
  t.same([...(await batch(100))], ['green'], 'blue 0 / green 100: 100 requests all on green');
  t.equal(blue.seen.length, blueBefore, 'blue got nothing after the flip');

  await m.writeRoutes(routes({ blue: 100, green: 0 }));
  await waitFor(async () => answeredBy(await send(m.port, { agent })) === 'blue', 'the flip back to blue');
  t.same([...(await batch(50))], ['blue'], 'and back: everything on blue again');
});

t.test('override header forces a version, even one at weight 0; an unknown name falls back to the split', async (t) => {
  const { m, canary } = await splitMeridian(t, { weights: { stable: 100, canary: 0 }, override: { header: 'x-meridian-version' } });
  const agent = keepAlive(t);
  const forced: string[] = [];
  for (let i = 0; i < 20; i++) forced.push(answeredBy(await send(m.port, { agent, headers: { 'x-meridian-version': 'canary' } })));
  t.same(new Set(forced), new Set(['canary']), 'x-meridian-version: canary reaches the canary at weight 0');
  t.equal(canary.seen.length, 20, 'the canary upstream saw all 20 forced requests');
  t.equal(answeredBy(await send(m.port, { agent, headers: { 'X-Meridian-Version': ' canary ' } })), 'canary', 'header name in any case, value trimmed');
  t.equal(answeredBy(await send(m.port, { agent, headers: { 'x-meridian-version': 'stable' } })), 'stable', 'the override can name the default version too');
  const unknown: string[] = [];
  for (let i = 0; i < 20; i++) unknown.push(answeredBy(await send(m.port, { agent, headers: { 'x-meridian-version': 'nightly' } })));
  t.same(new Set(unknown), new Set(['stable']), 'an unknown version name falls back to the split (stable 100)');
  const plain: string[] = [];
  for (let i = 0; i < 20; i++) plain.push(answeredBy(await send(m.port, { agent })));
  t.same(new Set(plain), new Set(['stable']), 'without the header, the split decides');
});

t.test('sticky cookie: assigned once with set-cookie, then honoured', async (t) => {
  const { m, stable, canary } = await splitMeridian(t, { weights: { stable: 50, canary: 50 }, sticky: { cookie: 'mrd-bucket' } });
  // The upstreams set a cookie of their own: Meridian's must be added beside it, not replace it.
  for (const up of [stable, canary]) {
    const label = up === stable ? 'stable' : 'canary';
    up.handle((_req, res) => {
      res.writeHead(200, { 'x-upstream': label, 'set-cookie': ['app=1; Path=/'] }).end(label);
    });
  }
  const agent = keepAlive(t);
  const first = await send(m.port, { agent });
  t.equal(first.status, 200, 'the first request is served');
  const cookies = first.headers['set-cookie'] ?? [];
  const ours = cookies.find((c) => c.startsWith('mrd-bucket='));
  t.ok(ours !== undefined, `a request without the cookie gets one (set-cookie: ${JSON.stringify(cookies)})`);
  t.match(ours, /^mrd-bucket=[^;\s]+; Path=\/;.*\bHttpOnly\b/, 'the cookie is host-wide and HttpOnly');
  t.ok(cookies.includes('app=1; Path=/'), "the upstream's own set-cookie is kept");
  const value = /^mrd-bucket=([^;]+)/.exec(ours ?? '')?.[1] ?? '';
  const assigned = answeredBy(first);

  const again: string[] = [];
  let reassigned = 0;
  for (let i = 0; i < 20; i++) {
    const res = await send(m.port, { agent, headers: { cookie: `mrd-bucket=${value}` } });
    again.push(answeredBy(res));
    if ((res.headers['set-cookie'] ?? []).some((c) => c.startsWith('mrd-bucket='))) reassigned++;
  }
  t.same(new Set(again), new Set([assigned]), `sending the cookie back always lands on ${assigned}, where the first request went`);
  t.equal(reassigned, 0, 'a request that carries the cookie gets no new set-cookie');
  const among = await send(m.port, { agent, headers: { cookie: `theme=dark; mrd-bucket=${value}; lang=en` } });
  t.equal(answeredBy(among), assigned, 'the cookie is found among other cookies');

  const fresh = new Set<string>();
  const values = new Set<string>();
  for (let i = 0; i < 30; i++) {
    const res = await send(m.port, { agent });
    fresh.add(answeredBy(res));
    const c = (res.headers['set-cookie'] ?? []).find((s) => s.startsWith('mrd-bucket='));
    if (c !== undefined) values.add(c);
  }
  t.equal(values.size, 30, 'every cookie-less request gets its own new cookie');
  t.same([...fresh].sort(), ['canary', 'stable'], 'new visitors are spread over both versions');
});

t.test('version fallback: a version with every endpoint drained is served by the other version', async (t) => {
  const drainedStable = await startUpstream('stable-drained');
  t.teardown(() => drainedStable.kill());
  const { m, canary } = await splitMeridian(t, { weights: { stable: 90, canary: 10 } }, [{ address: drainedStable.address, drain: true }]);
  const agent = keepAlive(t);
  const got: string[] = [];
  for (let i = 0; i < 30; i++) got.push(answeredBy(await send(m.port, { agent })));
  t.same(new Set(got), new Set(['canary']), 'all 30 requests are served by canary instead of failing');
  t.equal(canary.seen.length, 30, 'the canary upstream saw all 30');
  t.equal(drainedStable.seen.length, 0, 'the drained stable endpoint gets nothing');
});
