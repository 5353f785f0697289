import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { NetworkEntry } from '../src/config/static-schema.js';
import { Locator } from '../src/geo/locator.js';
import { GeoDatabase } from '../src/geo/mmdb.js';
import type { Origin } from '../src/geo/origin.js';
import { formatIp, type IpAddress } from '../src/net/ip.js';
import { parseCidr, type Cidr } from '../src/net/prefix-map.js';
import { createLogger } from '../src/observability/logger.js';
import { dig } from './helpers/dig.js';
import { startTestMeridian } from './helpers/meridian.js';
import { writeMmdb } from './helpers/mmdb.js';
import { waitFor } from './helpers/poll.js';
import { Rng } from './helpers/rng.js';
import { startUpstream } from './helpers/upstream.js';

const logger = createLogger('silent');

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'meridian-scope-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function cidr(text: string): Cidr {
  const parsed = parseCidr(text);
  if (typeof parsed === 'string') throw new Error(parsed);
  return parsed;
}

/** One address family as plain bigints, so one checker serves IPv4 and IPv6. */
interface Family {
  readonly bits: number;
  ip(value: bigint): IpAddress;
}
const V4: Family = { bits: 32, ip: (value) => ({ family: 4, value: Number(value) }) };
const V6: Family = { bits: 128, ip: (value) => ({ family: 6, value }) };

function mask(value: bigint, length: number, bits: number): bigint {
  const host = BigInt(bits - length);
  return (value >> host) << host;
}

function last(value: bigint, length: number, bits: number): bigint {
  return mask(value, length, bits) | ((1n << BigInt(bits - length)) - 1n);
}

/** A random network near one of a few seeds, so networks nest and sit side by side. */
function randomNetwork(rng: Rng, family: Family, seeds: readonly bigint[], minLength: number): { start: bigint; length: number } {
  const length = minLength + rng.int(family.bits - minLength - 1);
  // Flip a few bits below a random depth: near the seed, not always inside one another.
  let value = rng.pick(seeds);
  for (let i = 0; i < 3; i++) value ^= 1n << BigInt(rng.int(family.bits - Math.min(length, 6)));
  return { start: mask(value, length, family.bits), length };
}

/** A random value of `n` bits. */
function randomBits(rng: Rng, n: number): bigint {
  let value = 0n;
  for (let got = 0; got < n; got += 30) value = (value << 30n) | BigInt(rng.int(2 ** 30));
  return BigInt.asUintN(n, value);
}

function text(family: Family, start: bigint, length: number): string {
  return `${formatIp(family.ip(start))}/${length}`;
}

/**
 * For one locator: the scope of `client` never covers an address with another
 * origin (checked at the scope's edges, at every configured network inside it
 * and at random addresses), and it is exact: the block one bit shorter holds
 * an address with another origin.
 */
function checkScope(t: Test, rng: Rng, locator: Locator, family: Family, client: bigint, networks: readonly { start: bigint; length: number }[], label: string): boolean {
  const { origin, scope } = locator.decide(family.ip(client));
  const originOf = (value: bigint): Origin => locator.locate(family.ip(value));
  const inside = (value: bigint, length: number): boolean => mask(value, length, family.bits) === mask(client, length, family.bits);
  const probes = (length: number): bigint[] => {
    const found = [mask(client, length, family.bits), last(client, length, family.bits)];
    if (length < family.bits) {
      // The half of the block the client is not in.
      const other = client ^ (1n << BigInt(family.bits - length - 1));
      found.push(mask(other, length + 1, family.bits), last(other, length + 1, family.bits));
    }
    for (const n of networks) if (n.length >= length && inside(n.start, length)) found.push(n.start, last(n.start, n.length, family.bits));
    return found;
  };
  if (originOf(client) !== origin) return t.fail(`${label}: decide and locate disagree on the origin`);
  const samples = probes(scope);
  for (let i = 0; i < 8; i++) samples.push(mask(client, scope, family.bits) | randomBits(rng, family.bits - scope));
  for (const s of samples) {
    if (originOf(s) !== origin) return t.fail(`${label}: ${formatIp(family.ip(s))} inside the scope /${scope} has origin ${originOf(s).key}, not ${origin.key}`);
  }
  if (scope > 0 && probes(scope - 1).every((s) => originOf(s) === origin)) return t.fail(`${label}: scope /${scope} is longer than needed: /${scope - 1} holds ${origin.key} only`);
  return true;
}

async function propertyRun(t: Test, family: Family, seed: number, withDatabase: boolean): Promise<void> {
  const rng = new Rng(seed);
  const dir = await tempDir(t);
  const base = family === V4 ? 0x0a000000n : 0x20010db8n << 96n;
  const seeds = [base, base | (1n << BigInt(family.bits - 12)), base ^ (1n << BigInt(family.bits - 3)), BigInt.asUintN(family.bits, ~base)];
  let checked = 0;
  for (let round = 0; round < 12; round++) {
    const geo: { start: bigint; length: number }[] = [];
    const networks: NetworkEntry[] = [];
    const seen = new Set<string>();
    const count = 1 + rng.int(8);
    for (let i = 0; i < count; i++) {
      const n = rng.chance(0.05) ? { start: 0n, length: 0 } : randomNetwork(rng, family, seeds, 1);
      const key = text(family, n.start, n.length);
      if (seen.has(key)) continue;
      seen.add(key);
      geo.push(n);
      networks.push({ cidr: cidr(key), ...(rng.chance(0.5) ? { region: `r${i}` } : { location: { lat: i, lon: i } }) });
    }
    const locator = new Locator(networks, { location: { lat: 51.5, lon: 0 } });
    const all = [...geo];
    if (withDatabase) {
      const entries: { cidr: string; data: { latitude: { double: number }; longitude: { double: number } } }[] = [];
      const taken = new Set<string>();
      for (let i = 0; i < 2 + rng.int(8); i++) {
        const n = randomNetwork(rng, family, seeds, 1);
        const key = text(family, n.start, n.length);
        if (taken.has(key)) continue;
        taken.add(key);
        all.push(n);
        // A distinct point per network: two records never make one origin, so the scope can be exact.
        entries.push({ cidr: key, data: { latitude: { double: 10 + round + i / 100 }, longitude: { double: 20 + i } } });
      }
      const path = join(dir, `round-${round}.mmdb`);
      await writeMmdb(path, { databaseType: 'Scope-Test', ipVersion: family === V4 ? 4 : 6, networks: entries });
      const database = await GeoDatabase.open(path, logger, () => {});
      locator.useDatabase(database);
    }
    for (let q = 0; q < 25; q++) {
      // Clients near the networks (often inside one), with any source prefix.
      const near = rng.chance(0.8) ? rng.pick(all).start ^ randomBits(rng, 1 + rng.int(family.bits - 1)) : randomBits(rng, family.bits);
      const source = rng.int(family.bits + 1);
      const client = mask(near, source, family.bits);
      const label = `seed ${seed} round ${round}: ${text(family, client, source)} with ${[...seen].join(' ')}${withDatabase ? ' and a database' : ''}`;
      if (!checkScope(t, rng, locator, family, client, all, label)) return;
      checked++;
    }
  }
  t.pass(`seed ${seed}: ${checked} clients, every scope safe and exact`);
}

t.test('property: no address inside the scope gets another origin, and the scope is as short as that allows', async (t) => {
  const seeds = process.env['MERIDIAN_SCOPE_SEED'] === undefined ? [1, 2, 3, 4, 5, 6] : [Number(process.env['MERIDIAN_SCOPE_SEED'])];
  for (const seed of seeds) {
    await propertyRun(t, V4, seed, false);
    await propertyRun(t, V4, seed, true);
    await propertyRun(t, V6, seed, seed % 2 === 0);
  }
});

t.test('scopes of the issue: a /16 nested in a /8, /16s only, unknown clients', async (t) => {
  const nested = new Locator([
    { cidr: cidr('10.0.0.0/8'), region: 'us-east' },
    { cidr: cidr('10.1.0.0/16'), region: 'eu-west' },
  ], {});
  const at = (locator: Locator, address: string): { key: string; scope: number } => {
    const d = locator.decide(V4.ip(BigInt(cidr(address).network.value as number)));
    return { key: d.origin.key, scope: d.scope };
  };
  t.same(at(nested, '10.9.1.0'), { key: '10.0.0.0/8', scope: 13 }, '10.9.1.0: 10.8.0.0/13 is the largest block around it without 10.1.0.0/16');
  t.same(at(nested, '10.1.7.0'), { key: '10.1.0.0/16', scope: 16 });
  t.same(at(nested, '10.0.0.0'), { key: '10.0.0.0/8', scope: 16 }, '10.0.0.0/16 borders 10.1.0.0/16');
  t.same(at(nested, '10.128.0.0'), { key: '10.0.0.0/8', scope: 9 });
  t.same(at(nested, '192.0.2.0'), { key: 'unknown', scope: 1 }, 'an unknown client: 128.0.0.0/1 holds no network');
  const sixteens = new Locator(['10.1.0.0/16', '10.2.0.0/16', '10.3.0.0/16'].map((c) => ({ cidr: cidr(c), region: 'eu-west' })), {});
  t.same(at(sixteens, '10.0.0.0'), { key: 'unknown', scope: 16 }, '10.0.0.0/8 with only /16s: /16, longer than the source');
  t.equal(sixteens.decide({ family: 6, value: 0x20010db8n << 96n }).scope, 0, 'no IPv6 network: every IPv6 client gets the same answer');
});

t.test('dig: ECS scopes over geo.networks and geo.mmdb together', async (t) => {
  const dir = await tempDir(t);
  const mmdb = join(dir, 'geo.mmdb');
  // The database splits 20.0.0.0/8 around 20.1.0.0/16 itself, as every writer does.
  await writeMmdb(mmdb, {
    databaseType: 'GeoIP2-City',
    ipVersion: 6,
    networks: [
      { cidr: '20.0.0.0/8', data: { location: { latitude: { double: 38.9 }, longitude: { double: -77.04 } } } },
      { cidr: '20.1.0.0/16', data: { location: { latitude: { double: 53.35 }, longitude: { double: -6.26 } } } },
    ],
  });
  const eu = await startUpstream('eu');
  const us = await startUpstream('us');
  t.teardown(async () => {
    await eu.kill();
    await us.kill();
  });
  // Healthy at the first check; slow to call an endpoint down, so a loaded machine does not move answers mid-test.
  const checks = { interval: '1s', timeout: '1s', healthyThreshold: 1, unhealthyThreshold: 5 };
  const m = await startTestMeridian(
    {
      regions: {
        'eu-west': { location: { lat: 53.35, lon: -6.26 }, edge: { ipv4: ['203.0.113.10'] } },
        'us-east': { location: { lat: 38.9, lon: -77.04 }, edge: { ipv4: ['203.0.113.20'] } },
      },
      services: { web: { healthCheck: checks, versions: { stable: { endpoints: { 'eu-west': [eu.address], 'us-east': [us.address] } } } } },
      routes: { www: { hosts: ['www.example.com'], service: 'web' } },
    },
    {
      node: { location: { lat: 51.51, lon: -0.13 } },
      dns: { listen: '127.0.0.1:0', ttl: '30s', zones: [{ name: 'example.com', nameservers: ['ns1.example.com'] }] },
      geo: {
        mmdb,
        networks: [
          { cidr: '10.0.0.0/8', region: 'us-east' },
          { cidr: '10.1.0.0/16', region: 'eu-west' },
          { cidr: '11.1.0.0/16', region: 'eu-west' },
          { cidr: '11.2.0.0/16', region: 'us-east' },
          { cidr: '20.1.2.0/24', region: 'us-east' },
        ],
      },
    },
  );
  t.teardown(() => m.close());
  const port = m.dnsPort as number;
  await waitFor(async () => (await dig(port, ['www.example.com', '+subnet=10.9.1.0/24'])).answers[0]?.data === '203.0.113.20', 'us-east healthy');
  const cases: [string, string, string, string][] = [
    ['10.9.1.0/24', '203.0.113.20', '10.9.1.0/24/13', 'the /8 around a /16: 10.8.0.0/13 (as gdnsd answers)'],
    ['10.1.5.0/24', '203.0.113.10', '10.1.5.0/24/16', 'inside the /16'],
    ['10.0.0.0/8', '203.0.113.20', '10.0.0.0/8/16', 'a source shorter than the deciding network: a longer scope'],
    ['11.0.0.0/8', '203.0.113.10', '11.0.0.0/8/16', 'only /16s configured: never /8 (unknown, the node in London decides)'],
    ['11.1.0.0/24', '203.0.113.10', '11.1.0.0/24/16', 'a configured /16'],
    ['20.9.0.0/16', '203.0.113.20', '20.9.0.0/16/13', 'the database /8 split around its /16: the piece 20.8.0.0/13'],
    ['20.1.9.0/24', '203.0.113.10', '20.1.9.0/24/21', 'the database /16 around the geo.networks /24: 20.1.8.0/21 leaves it out'],
    ['20.1.2.0/24', '203.0.113.20', '20.1.2.0/24/24', 'geo.networks wins over the database'],
    ['192.0.2.0/24', '203.0.113.10', '192.0.2.0/24/1', 'unknown to both: 128.0.0.0/1 holds no network of either'],
    ['0.0.0.0/0', '203.0.113.10', '0.0.0.0/0/0', 'a /0 source is not located: the node decides, for every /0 question'],
  ];
  for (const [subnet, address, echoed, why] of cases) {
    const r = await dig(port, ['www.example.com', `+subnet=${subnet}`]);
    t.same(r.answers.map((a) => a.data), [address], `${subnet}: answer`);
    t.equal(r.subnet, echoed, `${subnet}: ${why}`);
  }
});
