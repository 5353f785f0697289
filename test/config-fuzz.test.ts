import { isDeepStrictEqual } from 'node:util';

import t from 'tap';
import { stringify } from 'yaml';
import { parseConfigText } from '../src/config/document.js';
import { validateRoutingDocument } from '../src/config/routing-document.js';
import type { ObjectKind } from '../src/config/routing-schema.js';
import { validateObject } from '../src/config/routing-validate.js';
import type { RoutingTable } from '../src/routing/table.js';
import { getJson, send } from './helpers/client.js';
import { etcdFixture } from './helpers/etcd.js';
import { startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';
import { Rng } from './helpers/rng.js';

/**
 * Seeded fuzzing of the control plane: thousands of random and mutated routing
 * documents (YAML and JSON text) and etcd values while traffic flows to a
 * sentinel route that no accepted change touches. The node must stay up, the
 * sentinel must keep answering 200 from the last valid table, and everything
 * refused must be listed in the admin state. Set FUZZ_SEED to replay a run.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20261130);
const FILE_CASES = 1_500;
const ETCD_CASES = 700;

/** Random routing objects, mutations of them and mangled text, from a seeded generator. */
class Fuzz extends Rng {
  /** A value of a surprising type or shape. */
  weird(depth = 0): unknown {
    const plain = [null, true, false, 0, -1, 1.5, 1e308, -1e308, '', 'x', '5s', '-1s', '0s', '1.5x', 'eu-west', 'home', 'sentinel', '127.0.0.1:1', '999.1.1.1:80', '[::1]:80', 'a'.repeat(300), '\u0000', '\ud83d\udca5', 'null', '{}'];
    if (depth > 2 || this.chance(0.7)) return this.pick(plain);
    if (this.chance(0.5)) return Array.from({ length: this.int(4) }, () => this.weird(depth + 1));
    return Object.fromEntries(Array.from({ length: this.int(4) }, () => [this.pick(['a', 'versions', 'endpoints', 'weights', 'hosts', 'service', 'location', 'lat']), this.weird(depth + 1)]));
  }

  name(prefix: string): string {
    return `${prefix}${this.int(4)}`;
  }

  region(): Record<string, unknown> {
    return { location: { lat: this.int(180) - 90, lon: this.int(360) - 180 }, ...(this.chance(0.2) ? { drain: this.chance(0.5) } : {}) };
  }

  service(regions: readonly string[]): Record<string, unknown> {
    const versions: Record<string, unknown> = {};
    const names = this.chance(0.5) ? ['stable'] : ['stable', 'canary'];
    for (const v of names) versions[v] = { endpoints: { [this.chance(0.1) ? 'nowhere' : this.pick(regions)]: [`127.0.0.1:${1 + this.int(3)}`] } };
    const service: Record<string, unknown> = { versions };
    if (names.length > 1 || this.chance(0.2)) service.split = { weights: Object.fromEntries(names.map((v) => [v, this.pick([0, 1, 50, 100])])) };
    if (this.chance(0.3)) service.steering = this.pick(['nearest', 'latency', 'sideways']);
    return service;
  }

  route(services: readonly string[]): Record<string, unknown> {
    return {
      hosts: this.chance(0.3) ? [] : [this.pick(['a.test', '*.test', 'sentinel.test', 'b.example.com', 'c.example.com', 'bad host'])],
      pathPrefix: this.pick(['/', '/a', '/b/', '/c', 'nope', '/?x']),
      service: this.chance(0.1) ? 'missing' : this.pick(services),
    };
  }

  /** Changes a few things in an object: removes, retypes or renames fields, or adds unknown ones. */
  mutate(value: Record<string, unknown>): Record<string, unknown> {
    const out = structuredClone(value);
    for (let i = 0, n = this.int(3); i < n; i++) {
      const keys = Object.keys(out);
      const key = keys.length > 0 ? this.pick(keys) : 'x';
      switch (this.int(4)) {
        case 0:
          delete out[key];
          break;
        case 1:
          out[key] = this.weird();
          break;
        case 2:
          out[this.pick(['colour', 'wieght', 'hostz'])] = this.weird();
          break;
        default: {
          const inner = out[key];
          if (inner !== null && typeof inner === 'object' && !Array.isArray(inner)) out[key] = this.mutate(inner as Record<string, unknown>);
        }
      }
    }
    return out;
  }

  /** Mangles text: truncates it, flips bytes, inserts YAML constructs, duplicates or drops lines. */
  mangle(text: string): string {
    const snippets = ['&a ', '*a', '!!binary ', '!!str ', '? ', '- ', '{', '}', '[', ']', '"', "'", '\t', '\u0000', '---\n', '...\n', '%YAML 1.2\n', '<<: *a\n', ': ', '#', '\ufeff', '\r'];
    let out = text;
    for (let i = 0, n = 1 + this.int(3); i < n; i++) {
      const at = this.int(out.length + 1);
      switch (this.int(5)) {
        case 0:
          out = out.slice(0, at);
          break;
        case 1:
          out = `${out.slice(0, at)}${String.fromCharCode(this.int(256))}${out.slice(at + 1)}`;
          break;
        case 2:
          out = `${out.slice(0, at)}${this.pick(snippets)}${out.slice(at)}`;
          break;
        case 3: {
          const lines = out.split('\n');
          lines.splice(this.int(lines.length), 0, this.pick(lines));
          out = lines.join('\n');
          break;
        }
        default: {
          const lines = out.split('\n');
          lines.splice(this.int(lines.length), 1);
          out = lines.join('\n');
        }
      }
    }
    return out;
  }
}

const HOME = { location: { lat: 53.35, lon: -6.26 } };
function sentinelService(up: TestUpstream): Record<string, unknown> {
  return { healthCheck: { interval: '1m', timeout: '1s' }, versions: { stable: { endpoints: { home: [up.address] } } } };
}
const SENTINEL_ROUTE = { hosts: ['sentinel.test'], pathPrefix: '/', service: 'sentinel' };

/** Sends to the sentinel route until stopped; resolves with the statuses seen and how many. */
function sentinelTraffic(m: TestMeridian): { stop(): Promise<Map<number, number>> } {
  let stopped = false;
  const seen = new Map<number, number>();
  const loop = (async () => {
    while (!stopped) {
      const status = await send(m.port, { headers: { host: 'sentinel.test' } }).then(
        (r) => r.status,
        () => 0,
      );
      seen.set(status, (seen.get(status) ?? 0) + 1);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return seen;
    },
  };
}

t.test(`routes files: ${FILE_CASES} random and mutated documents while traffic flows (seed ${SEED})`, async (t) => {
  const fuzz = new Fuzz(SEED);
  const up = await startUpstream('sentinel');
  const base = { regions: { home: HOME }, services: { sentinel: sentinelService(up) }, routes: { sentinel: SENTINEL_ROUTE } };
  const m = await startTestMeridian(base);
  t.teardown(async () => {
    await m.close();
    await up.kill();
  });
  const sentinelSpecs = validateRoutingDocument(base).doc;
  const traffic = sentinelTraffic(m);
  const outcomes = new Map<string, number>();
  let skipped = 0;
  for (let i = 0; i < FILE_CASES; i++) {
    const regions = ['home', fuzz.name('r')];
    const services = ['sentinel', fuzz.name('s')];
    const doc: Record<string, unknown> = {
      regions: { home: HOME, [regions[1] as string]: fuzz.chance(0.15) ? fuzz.mutate(fuzz.region()) : fuzz.region() },
      services: { sentinel: sentinelService(up), [services[1] as string]: fuzz.chance(0.15) ? fuzz.mutate(fuzz.service(regions)) : fuzz.service(regions) },
      routes: { sentinel: SENTINEL_ROUTE, [fuzz.name('t')]: fuzz.chance(0.15) ? fuzz.mutate(fuzz.route(services)) : fuzz.route(services) },
    };
    if (fuzz.chance(0.05)) doc[fuzz.pick(['regions', 'services', 'routes', 'extra'])] = fuzz.weird();
    let text = fuzz.chance(0.5) ? stringify(doc) : JSON.stringify(doc, null, fuzz.chance(0.5) ? 2 : 0);
    if (fuzz.chance(0.25)) text = fuzz.mangle(text);

    // The oracle: what the router must do with this text. A valid document that would change the
    // sentinel's objects is skipped, so the sentinel's traffic must always be answered 200.
    let valid: boolean;
    try {
      const checked = validateRoutingDocument(parseConfigText(text, 'fuzz.yaml'));
      valid = checked.issues.length === 0;
      if (valid && (!isDeepStrictEqual(checked.doc.regions.home, sentinelSpecs.regions.home) || !isDeepStrictEqual(checked.doc.services.sentinel, sentinelSpecs.services.sentinel) || !isDeepStrictEqual(checked.doc.routes.sentinel, sentinelSpecs.routes.sentinel))) {
        skipped++;
        continue;
      }
    } catch {
      valid = false;
    }
    await m.writeRoutes(text);
    const reload = await send(m.adminPort, { method: 'POST', path: '/api/v1/reload' });
    if (reload.status !== 200) t.fail(`case ${i}: the reload answered ${reload.status}: ${reload.text}`);
    const { result, errors } = JSON.parse(reload.text) as { result: string; errors: unknown[] };
    outcomes.set(result, (outcomes.get(result) ?? 0) + 1);
    if (valid) {
      if (!['applied', 'unchanged'].includes(result) || errors.length > 0) t.fail(`case ${i}: a valid document was not applied (${result}): ${JSON.stringify(errors)}\n${text}`);
    } else if (result !== 'rejected' || errors.length === 0) {
      t.fail(`case ${i}: an invalid document was ${result} with errors ${JSON.stringify(errors)}\n${text}`);
    }
  }
  const statuses = await traffic.stop();
  t.same([...statuses.keys()], [200], `the sentinel answered 200 throughout: ${JSON.stringify([...statuses])}`);
  t.ok((outcomes.get('rejected') ?? 0) > FILE_CASES / 10 && (outcomes.get('applied') ?? 0) > FILE_CASES / 10, `both outcomes were exercised: ${JSON.stringify([...outcomes])}, ${skipped} skipped`);
  t.equal((await send(m.adminPort, { path: '/healthz' })).status, 200, 'the node is up');
});

/** The object a compiled table holds for a key's kind and name, or undefined. */
function inForce(table: RoutingTable, kind: ObjectKind, name: string): unknown {
  if (kind === 'regions') return table.regions.get(name)?.spec;
  if (kind === 'services') return table.services.get(name)?.spec;
  return table.routes.get(name)?.spec;
}

t.test(`etcd values: ${ETCD_CASES} random puts and deletes while traffic flows (seed ${SEED})`, async (t) => {
  const fuzz = new Fuzz(SEED + 1);
  const { etcd, client, up } = await etcdFixture(t, 'sentinel');
  const written = new Map<string, string | null>();
  const write = async (key: string, value: string | null): Promise<number> => {
    written.set(key, value);
    const res = value === null ? await client.delete().key(`/meridian/${key}`).exec() : await client.put(`/meridian/${key}`).value(value).exec();
    return Number(res.header.revision);
  };
  await write('regions/home', JSON.stringify(HOME));
  await write('services/sentinel', JSON.stringify(sentinelService(up)));
  await write('routes/sentinel', JSON.stringify(SENTINEL_ROUTE));
  const m = await startTestMeridian({}, { store: { file: undefined, etcd: { endpoints: [etcd.url] } } });
  t.teardown(() => m.close());
  const traffic = sentinelTraffic(m);
  const sentinelKeys = new Set(['regions/home', 'services/sentinel', 'routes/sentinel']);
  let violations = 0;
  let taken = 0;
  let refused = 0;
  for (let i = 0; i < ETCD_CASES; i++) {
    const kind = fuzz.pick(['regions', 'services', 'routes'] as const);
    const name = fuzz.chance(0.15) ? { regions: 'home', services: 'sentinel', routes: 'sentinel' }[kind] : fuzz.name(kind.slice(0, 1));
    const key = `${kind}/${name}`;
    const object = kind === 'regions' ? fuzz.region() : kind === 'services' ? fuzz.service(['home', 'r0', 'r1']) : fuzz.route(['sentinel', 's0', 's1']);
    let value: string | null = JSON.stringify(fuzz.chance(0.4) ? fuzz.mutate(object) : object);
    if (fuzz.chance(0.1)) value = fuzz.mangle(value);
    if (fuzz.chance(0.15)) value = null;
    if (sentinelKeys.has(key)) {
      // The sentinel's keys only get values a router must refuse on their own, or deletes that leave references dangling.
      const ownProblem = value !== null && (() => {
        try {
          return !validateObject(kind, name, JSON.parse(value) as unknown).ok;
        } catch {
          return true;
        }
      })();
      if (!(ownProblem || (value === null && key !== 'routes/sentinel'))) continue;
    }
    const revision = await write(key, value);
    await waitFor(async () => (await getJson<{ store: { revision: number } }>(m.adminPort, '/api/v1/state')).store.revision >= revision, `revision ${revision}`);
    await m.meridian.applier.flush();
    const state = await getJson<{ errors: { key: string }[] }>(m.adminPort, '/api/v1/state');
    const listed = new Set(state.errors.map((e) => e.key));
    if (listed.has(`/meridian/${key}`)) refused++;
    else taken++;
    const table = m.meridian.applier.current as RoutingTable;
    // Every key whose value in etcd is not the one in force is listed.
    for (const [k, v] of written) {
      const [kd, nm] = k.split('/') as [ObjectKind, string];
      const current = inForce(table, kd, nm);
      let agrees: boolean;
      if (v === null) agrees = current === undefined;
      else {
        try {
          const checked = validateObject(kd, nm, JSON.parse(v) as unknown);
          agrees = checked.ok && isDeepStrictEqual(checked.value, current);
        } catch {
          agrees = false;
        }
      }
      if (!agrees && !listed.has(`/meridian/${k}`)) {
        violations++;
        t.fail(`case ${i}: /meridian/${k} differs from what is in force but is not listed in state.errors`);
      }
    }
  }
  const statuses = await traffic.stop();
  t.equal(violations, 0, 'every key not in force was listed');
  t.ok(taken > ETCD_CASES / 10 && refused > ETCD_CASES / 10, `both outcomes were exercised: ${taken} taken, ${refused} refused`);
  t.same([...statuses.keys()], [200], `the sentinel answered 200 throughout: ${JSON.stringify([...statuses])}`);
  t.equal((await send(m.adminPort, { path: '/healthz' })).status, 200, 'the node is up');
});
