import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { Reader, type Response } from 'maxmind';
import t, { type Test } from 'tap';
import type { Countries } from 'world-countries';
import type { NetworkEntry } from '../src/config/static-schema.js';
import { ConfigError } from '../src/config/issues.js';
import { geoFacts } from '../src/geo/geo-record.js';
import { parseIp, type IpAddress } from '../src/net/ip.js';
import { Locator } from '../src/geo/locator.js';
import { GeoDatabase, type GeoDatabaseState } from '../src/geo/mmdb.js';
import type { Origin } from '../src/geo/origin.js';
import { parseCidr, type Cidr } from '../src/net/prefix-map.js';
import { createLogger } from '../src/observability/logger.js';
import { getJson, send, type TestResponse } from './helpers/client.js';
import { startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { buildMmdb, writeMmdb, type MmdbOptions, type MmdbValue } from './helpers/mmdb.js';
import { waitFor } from './helpers/poll.js';
import { compileClean, versionOf } from './helpers/table.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';

const logger = createLogger('silent');

/** Country centres as the world-countries data set gives them (what Locator must use). */
const WORLD = createRequire(import.meta.url)('world-countries') as Countries;
function centreOf(code: string): { lat: number; lon: number } {
  const found = WORLD.find((c) => c.cca2 === code);
  if (found === undefined) throw new Error(`world-countries has no ${code}`);
  return { lat: found.latlng[0], lon: found.latlng[1] };
}

const RICHMOND = { lat: 37.5407, lon: -77.436 }; // Virginia
const SYDNEY = { lat: -33.8688, lon: 151.2093 };
const DUBLIN = { lat: 53.35, lon: -6.26 };
const SINGAPORE = { lat: 1.35, lon: 103.82 };

/** GeoIP2-City layout, typed the way MaxMind writes it. */
function cityRecord(country: string, at: { lat: number; lon: number }, name: string): MmdbValue {
  return {
    city: { geoname_id: 4781708, names: { en: name } },
    continent: { code: 'NA', names: { en: 'Somewhere' } },
    country: { geoname_id: 6252001, iso_code: country, names: { en: country } },
    location: { accuracy_radius: { uint16: 20 }, latitude: { double: at.lat }, longitude: { double: at.lon }, time_zone: 'Etc/UTC' },
    registered_country: { geoname_id: 6252001, iso_code: country, names: { en: country } },
  };
}
const CITY_RICHMOND = cityRecord('US', RICHMOND, 'Richmond');
const CITY_SYDNEY = cityRecord('AU', SYDNEY, 'Sydney');
/** GeoIP2-Country layout: a country, no point. */
const COUNTRY_IE: MmdbValue = {
  continent: { code: 'EU', geoname_id: 6255148, names: { en: 'Europe' } },
  country: { geoname_id: 2963597, iso_code: 'IE', names: { en: 'Ireland' } },
  registered_country: { geoname_id: 2963597, iso_code: 'IE', names: { en: 'Ireland' } },
};
/** Some Country records (anycast, satellite) carry only the registered country. */
const REGISTERED_JP: MmdbValue = { registered_country: { geoname_id: 1861060, iso_code: 'JP', names: { en: 'Japan' } } };

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'meridian-geo-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function ip(text: string): IpAddress {
  const parsed = parseIp(text);
  if (parsed === null) throw new Error(`not an IP address: ${text}`);
  return parsed;
}

function cidr(text: string): Cidr {
  const parsed = parseCidr(text);
  if (typeof parsed === 'string') throw new Error(parsed);
  return parsed;
}

/** Opens a database that the test closes at teardown. */
async function openDatabase(t: Test, path: string, onReload: () => void = () => {}): Promise<GeoDatabase> {
  const database = await GeoDatabase.open(path, logger, onReload);
  t.teardown(() => database.close());
  return database;
}

/** Writes `options` as a .mmdb file in `dir` and opens it. */
async function databaseOf(t: Test, dir: string, name: string, options: MmdbOptions): Promise<GeoDatabase> {
  const path = join(dir, name);
  await writeMmdb(path, options);
  return openDatabase(t, path);
}

let replacements = 0;
/** Replaces a file the way database updaters do: write a temp file beside it, then rename over it. */
async function replaceFile(path: string, bytes: Buffer): Promise<void> {
  const temp = `${path}.tmp-${++replacements}`;
  await writeFile(temp, bytes);
  await rename(temp, path);
}

t.test('geoFacts reads the City, Country and flat ip-location-db layouts, and nothing from junk', async (t) => {
  const dir = await tempDir(t);
  const records: Record<string, MmdbValue> = {
    '10.0.0.0/24': CITY_RICHMOND,
    '10.0.1.0/24': COUNTRY_IE,
    '10.0.2.0/24': REGISTERED_JP,
    '10.0.3.0/24': { country: { iso_code: 'nz' }, registered_country: { iso_code: 'AU' } },
    // ip-location-db (dbip-city / geolite2-city converted): latitude/longitude as float32.
    '10.0.4.0/24': { city: 'Frankfurt am Main', country_code: 'DE', latitude: { float: 50.1109 }, longitude: { float: 8.6821 }, timezone: 'Europe/Berlin' },
    // Databases built from CSV: coordinates as decimal text.
    '10.0.5.0/24': { country_code: 'FR', latitude: '48.8566', longitude: ' 2.3522' },
    // Whole-degree and zero coordinates, as a double and as an unsigned integer.
    '10.0.6.0/24': { country_code: 'EC', latitude: { double: 0 }, longitude: { double: -78 } },
    '10.0.7.0/24': { country_code: 'IN', latitude: 20, longitude: 77 },
    // ip-location-db country databases: just the code.
    '10.0.8.0/24': { country_code: 'BR' },
    // Junk.
    '10.1.0.0/24': [{ country_code: 'IE' }, 53, -6],
    '10.1.1.0/24': 'IE',
    '10.1.2.0/24': 42,
    '10.1.3.0/24': { location: { latitude: { double: 90.5 }, longitude: { double: 0 } }, country: { iso_code: 'IRL' } },
    '10.1.4.0/24': { latitude: { double: 10 }, longitude: { double: 180.01 }, country_code: 'USA' },
    '10.1.5.0/24': { latitude: 'north', longitude: '1', country_code: 'I1' },
    '10.1.6.0/24': { latitude: '', longitude: '', country: 'IE', registered_country: ['IE'] },
    '10.1.7.0/24': { location: [53, -6], country: { iso_code: 372 } },
    '10.1.8.0/24': { latitude: { double: -91 }, longitude: { double: -181 } },
    '10.1.9.0/24': { latitude: { double: 53.35 } },
  };
  const database = await databaseOf(t, dir, 'layouts.mmdb', {
    databaseType: 'Meridian-Layouts',
    ipVersion: 4,
    networks: Object.entries(records).map(([cidr, data]) => ({ cidr, data })),
  });
  const factsAt = (address: string): ReturnType<typeof geoFacts> => geoFacts(database.lookup(address).record);

  t.same(factsAt('10.0.0.1'), { location: RICHMOND, country: 'US' }, 'City: location.latitude/longitude and country.iso_code');
  t.same(factsAt('10.0.1.1'), { location: null, country: 'IE' }, 'Country: country.iso_code, no point');
  t.same(factsAt('10.0.2.1'), { location: null, country: 'JP' }, 'Country: registered_country.iso_code when country is absent');
  t.same(factsAt('10.0.3.1'), { location: null, country: 'NZ' }, 'country wins over registered_country, upper-cased');
  t.same(factsAt('10.0.4.1'), { location: { lat: Math.fround(50.1109), lon: Math.fround(8.6821) }, country: 'DE' }, 'flat layout with float32 coordinates');
  t.same(factsAt('10.0.5.1'), { location: { lat: 48.8566, lon: 2.3522 }, country: 'FR' }, 'flat layout with numeric strings');
  t.same(factsAt('10.0.6.1'), { location: { lat: 0, lon: -78 }, country: 'EC' }, 'a zero latitude is a coordinate, not a missing one');
  t.same(factsAt('10.0.7.1'), { location: { lat: 20, lon: 77 }, country: 'IN' }, 'whole-degree coordinates stored as uint32');
  t.same(factsAt('10.0.8.1'), { location: null, country: 'BR' }, 'flat country-only record');

  const nothing = { location: null, country: null };
  t.same(factsAt('10.1.0.1'), nothing, 'an array record');
  t.same(factsAt('10.1.1.1'), nothing, 'a string record');
  t.same(factsAt('10.1.2.1'), nothing, 'a number record');
  t.same(factsAt('10.1.3.1'), nothing, 'latitude beyond 90 and a 3-letter country code');
  t.same(factsAt('10.1.4.1'), nothing, 'longitude beyond 180 and a 3-letter country_code');
  t.same(factsAt('10.1.5.1'), nothing, 'non-numeric text and a code with a digit');
  t.same(factsAt('10.1.6.1'), nothing, 'empty strings, a bare string country, an array registered_country');
  t.same(factsAt('10.1.7.1'), nothing, 'location as an array, a numeric iso_code');
  t.same(factsAt('10.1.8.1'), nothing, 'both coordinates out of range');
  t.same(factsAt('10.1.9.1'), nothing, 'a latitude without a longitude');
  t.same(database.lookup('192.0.2.1'), { record: null, prefixLength: 1 }, 'an address in no network: no record');
  t.same(factsAt('192.0.2.1'), nothing, 'no record');

  // Values no database file carries but a reader could hand over.
  t.same(geoFacts(null), nothing, 'null');
  t.same(geoFacts(undefined), nothing, 'undefined');
  t.same(geoFacts({ latitude: Number.NaN, longitude: 0 }), nothing, 'NaN');
  t.same(geoFacts({ latitude: Number.POSITIVE_INFINITY, longitude: 0 }), nothing, 'Infinity');
  t.same(geoFacts({ latitude: '1e400', longitude: '0' }), nothing, 'text that overflows to Infinity');
  t.same(geoFacts({ location: null, latitude: 1, longitude: 2 }), { location: { lat: 1, lon: 2 }, country: null }, 'a null location object falls back to the flat fields');
});

t.test('Locator with a database: City points, country centres, unknown addresses, networks first', async (t) => {
  const dir = await tempDir(t);
  const database = await databaseOf(t, dir, 'city.mmdb', {
    databaseType: 'GeoIP2-City',
    ipVersion: 6,
    networks: [
      { cidr: '198.51.100.0/24', data: CITY_RICHMOND },
      { cidr: '100.64.0.0/10', data: CITY_RICHMOND },
      { cidr: '2001:db8:1::/48', data: CITY_SYDNEY },
      { cidr: '203.0.113.0/24', data: COUNTRY_IE },
      { cidr: '2001:db8:2::/48', data: REGISTERED_JP },
      // Legacy GeoIP "continent" codes: a country code no data set has a centre for.
      { cidr: '192.0.2.128/25', data: { country: { iso_code: 'EU' } } },
      // A record that says nothing steering can use.
      { cidr: '192.0.2.0/25', data: { continent: { code: 'EU' } } },
    ],
  });
  const networks: NetworkEntry[] = [{ cidr: cidr('198.51.100.0/25'), region: 'us-east' }];
  const locator = new Locator(networks, { region: 'eu-west', location: DUBLIN });
  locator.useDatabase(database);
  t.same(locator.node, { key: 'node', region: 'eu-west', location: DUBLIN }, 'the node origin');

  // IPv4 City record (an IPv4 network in an IPv6 database).
  const richmond = locator.match(ip('198.51.100.200'));
  t.same(richmond, { origin: { key: 'mmdb:37.5407,-77.436', region: null, location: RICHMOND }, prefixLength: 24 }, 'IPv4: the record point and the network prefix');
  t.equal(richmond?.origin.country, undefined, 'a point origin carries no country');
  t.ok(Object.isFrozen(richmond?.origin), 'origins are frozen');
  t.equal(locator.locate(ip('198.51.100.201')), richmond?.origin, 'another address with the same record: the same origin object');
  t.equal(locator.locate(ip('::ffff:198.51.100.202')), richmond?.origin, 'an IPv4-mapped IPv6 client is the IPv4 client');
  const cgnat = locator.match(ip('100.64.20.1'));
  t.equal(cgnat?.origin, richmond?.origin, 'another network with the same record: the same origin object');
  t.equal(cgnat?.prefixLength, 10, 'with its own prefix length');

  // IPv6 City record.
  t.same(locator.match(ip('2001:db8:1:ff::7')), { origin: { key: 'mmdb:-33.8688,151.2093', region: null, location: SYDNEY }, prefixLength: 48 }, 'IPv6: the record point and the network prefix');

  // Country-only records: the country and its centre from world-countries.
  const ireland = locator.match(ip('203.0.113.9'));
  t.same(ireland, { origin: { key: 'mmdb:IE', region: null, location: centreOf('IE'), country: 'IE' }, prefixLength: 24 }, 'Country layout: country and centre');
  t.same(ireland?.origin.location, { lat: 53, lon: -8 }, "Ireland's centre");
  t.equal(locator.locate(ip('203.0.113.77')), ireland?.origin, 'same country: the same origin object');
  t.same(locator.match(ip('2001:db8:2::1')), { origin: { key: 'mmdb:JP', region: null, location: centreOf('JP'), country: 'JP' }, prefixLength: 48 }, 'registered_country only, IPv6');
  t.same(locator.locate(ip('2001:db8:2::1')).location, { lat: 36, lon: 138 }, "Japan's centre");
  t.same(locator.match(ip('192.0.2.200')), { origin: { key: 'mmdb:EU', region: null, location: null, country: 'EU' }, prefixLength: 25 }, 'a code without a centre: the country alone');

  // Unknown addresses: the node's origin.
  for (const unknown of ['192.0.2.1', '8.8.8.8', '2001:db8:ffff::1', '2600::1']) {
    t.equal(locator.match(ip(unknown)), null, `${unknown}: match() is null`);
    t.equal(locator.locate(ip(unknown)), locator.node, `${unknown}: locate() is the node origin`);
    t.equal(locator.locate(ip(unknown)), locator.node, `${unknown}: again, from the cache`);
  }
  t.equal(locator.locate(null), locator.node, 'no address: the node origin');

  // geo.networks wins over the database for an address both know.
  const mapped = locator.match(ip('198.51.100.7'));
  t.same(mapped, { origin: { key: '198.51.100.0/25', region: 'us-east', location: null }, prefixLength: 25 }, 'geo.networks wins');
  t.equal(locator.locate(ip('198.51.100.100')), mapped?.origin, 'the CIDR map origin is one object too');

  // Without node region or location, unknown clients get the unknown origin.
  const bare = new Locator([], {});
  bare.useDatabase(database);
  t.same(bare.locate(ip('192.0.2.1')), { key: 'unknown', region: null, location: null }, 'no node facts: the unknown origin');
  t.same(bare.locate(ip('198.51.100.7')).location, RICHMOND, 'and the database still answers');
});

t.test('Locator: an IPv6 client is unknown to an IPv4-only database', async (t) => {
  // ip-location-db ships separate -ipv4.mmdb and -ipv6.mmdb files. mmdb-lib does
  // not refuse an IPv6 address in an ipVersion 4 tree: 2001:db8::1 walks the
  // IPv4 tree as 32.1.13.184 and would get the record of 32.0.0.0/8;
  // GeoDatabase.lookup refuses IPv6 addresses when ipVersion is 4.
  const dir = await tempDir(t);
  const database = await databaseOf(t, dir, 'v4.mmdb', {
    databaseType: 'dbip-city-ipv4',
    ipVersion: 4,
    networks: [{ cidr: '32.0.0.0/8', data: { country_code: 'US', latitude: { float: 40 }, longitude: { float: -100 } } }],
  });
  const locator = new Locator([], {});
  locator.useDatabase(database);
  t.same(database.lookup('32.1.13.184'), { record: { country_code: 'US', latitude: 40, longitude: -100 }, prefixLength: 8 }, 'the IPv4 network itself');
  t.same(locator.match(ip('::ffff:32.1.13.184'))?.origin.location, { lat: 40, lon: -100 }, 'an IPv4-mapped client is looked up as IPv4');
  t.same(database.lookup('2001:db8::1'), { record: null, prefixLength: 0 }, 'an IPv6 address: no record');
  t.equal(locator.match(ip('2001:db8::1')), null, 'an IPv6 client: unknown');
  t.equal(locator.locate(ip('2001:db8::1')), locator.node, 'an IPv6 client: the node origin');
});

t.test('a file whose metadata parses but whose build_epoch is no date is refused', async (t) => {
  // The Reader accepts it; the admin state and reload log would fail on an Invalid Date.
  const dir = await tempDir(t);
  const path = join(dir, 'epoch.mmdb');
  await writeMmdb(path, { databaseType: 'GeoIP2-City', ipVersion: 4, buildEpoch: 9e15, networks: [{ cidr: '198.51.100.0/24', data: CITY_RICHMOND }] });
  await t.rejects(openDatabase(t, path), new RegExp(`cannot read ${path} as a MaxMind DB: metadata build_epoch is not a valid time`), 'refused at open, naming the path');
});

t.test('a corrupt data section: the lookup that reaches it answers nothing', async (t) => {
  const dir = await tempDir(t);
  const bytes = buildMmdb({ databaseType: 'GeoIP2-City', ipVersion: 4, networks: [{ cidr: '198.51.100.0/24', data: CITY_RICHMOND }, { cidr: '203.0.113.0/24', data: COUNTRY_IE }] });
  // The first record (Richmond) starts right after the tree and the 16-byte separator:
  // an extended type byte of 0xff names no type.
  const dataStart = new Reader<Response>(bytes).metadata.searchTreeSize + 16;
  bytes[dataStart] = 0x00;
  bytes[dataStart + 1] = 0xff;
  const path = join(dir, 'corrupt.mmdb');
  await writeFile(path, bytes);
  const database = await openDatabase(t, path);
  const locator = new Locator([], { location: DUBLIN });
  locator.useDatabase(database);
  t.same(database.lookup('198.51.100.7'), { record: null, prefixLength: 0 }, 'the corrupt record: no record, no prefix');
  t.equal(locator.match(ip('198.51.100.7')), null, 'the locator does not know the client');
  t.equal(locator.locate(ip('198.51.100.7')), locator.node, 'so it gets the node origin');
  t.same(locator.locate(ip('203.0.113.1')).country, 'IE', 'the intact record still answers');
});

t.test('steering from database origins through a compiled table', async (t) => {
  const dir = await tempDir(t);
  const database = await databaseOf(t, dir, 'steer.mmdb', {
    databaseType: 'GeoIP2-City',
    ipVersion: 6,
    networks: [
      { cidr: '203.0.113.0/26', data: { country: { iso_code: 'AU' } } },
      { cidr: '203.0.113.64/26', data: { country_code: 'JP' } },
      { cidr: '2001:db8:1::/48', data: CITY_SYDNEY },
    ],
  });
  const locator = new Locator([], {});
  locator.useDatabase(database);
  // eu-central is in Frankfurt but serves Australian customers by contract:
  // ap-southeast (Singapore) is by far the nearest region to Australia.
  const table = compileClean({
    regions: {
      'us-east': { location: { lat: 38.9, lon: -77.04 } },
      'eu-central': { location: { lat: 50.11, lon: 8.68 }, countries: ['AU', 'NZ'] },
      'ap-south': { location: { lat: 19.08, lon: 72.88 } },
      'ap-southeast': { location: SINGAPORE },
    },
    services: {
      web: {
        versions: {
          stable: {
            endpoints: {
              'us-east': ['10.0.1.1:80'],
              'eu-central': ['10.0.2.1:80'],
              'ap-south': ['10.0.3.1:80'],
              'ap-southeast': ['10.0.4.1:80'],
            },
          },
        },
      },
    },
    routes: { web: { pathPrefix: '/', service: 'web' } },
  });
  const steering = versionOf(table, 'web').steering;
  const order = (origin: Origin): string[] => steering.candidates(origin).map((g) => g.region.name);

  const australia = locator.locate(ip('203.0.113.9'));
  t.same(australia, { key: 'mmdb:AU', region: null, location: centreOf('AU'), country: 'AU' }, 'an Australian country-only origin');
  t.same(order(australia), ['eu-central', 'us-east', 'ap-south', 'ap-southeast'], 'the region listing AU first, the rest ranked from that region (Frankfurt)');

  const japan = locator.locate(ip('203.0.113.70'));
  t.same(japan, { key: 'mmdb:JP', region: null, location: centreOf('JP'), country: 'JP' }, 'a Japanese country-only origin');
  t.same(order(japan), ['ap-southeast', 'ap-south', 'eu-central', 'us-east'], 'a country no region lists: by distance from its centre');

  const sydney = locator.locate(ip('2001:db8:1::99'));
  t.same(sydney.location, SYDNEY, 'a City origin in Australia');
  t.same(order(sydney), ['ap-southeast', 'ap-south', 'us-east', 'eu-central'], 'a point goes by distance, whatever country the record names');

  t.equal(steering.candidates(locator.locate(ip('203.0.113.10'))), steering.candidates(australia), 'the same origin object: the memoised order');
  t.same(order(locator.locate(ip('192.0.2.1'))), ['us-east', 'eu-central', 'ap-south', 'ap-southeast'], 'unknown client and no node facts: declaration order');
});

t.test('a replaced database file is swapped in; a broken replacement is refused', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'geo.mmdb');
  const version = (databaseType: string, record: MmdbValue): Buffer =>
    buildMmdb({ databaseType, ipVersion: 6, buildEpoch: 1_700_000_000, networks: [{ cidr: '198.51.100.0/24', data: record }] });
  await writeFile(path, version('Test-v1', CITY_RICHMOND));

  const locator = new Locator([], {});
  let forgotten = 0;
  const database = await openDatabase(t, path, () => {
    forgotten++;
    locator.forget();
  });
  locator.useDatabase(database);
  database.watch();
  const client = ip('198.51.100.7');
  const at = (): unknown => locator.locate(client).location;
  t.same(at(), RICHMOND, 'v1 answers (and the answer is cached)');
  const first: GeoDatabaseState = database.state();
  t.same({ ...first, loadedAt: 'x' }, { path, databaseType: 'Test-v1', ipVersion: 6, builtAt: '2023-11-14T22:13:20.000Z', loadedAt: 'x', reloads: 0, error: null }, 'state after open');

  await replaceFile(path, version('Test-v2', CITY_SYDNEY));
  await waitFor(() => database.state().reloads === 1, 'the v2 reload');
  t.equal(forgotten, 1, 'onReload ran once');
  t.same(at(), SYDNEY, 'the locator answers from v2, not from its cache');
  t.same(database.lookup('198.51.100.7').record, { ...(CITY_SYDNEY as object), location: { accuracy_radius: 20, latitude: SYDNEY.lat, longitude: SYDNEY.lon, time_zone: 'Etc/UTC' } }, 'the database answers from v2');
  const second = database.state();
  t.equal(second.databaseType, 'Test-v2', 'state shows v2');
  t.equal(second.error, null, 'no error');
  t.ok(Date.parse(second.loadedAt) >= Date.parse(first.loadedAt), 'loadedAt moved on');

  // A half-written file: the start of a valid one, metadata missing.
  const v3 = version('Test-v3', COUNTRY_IE);
  await replaceFile(path, v3.subarray(0, Math.floor(v3.length / 2)));
  const truncated = await waitFor(() => database.state().error, 'the truncated file to be refused');
  t.type(truncated, 'string', 'state().error says why');
  t.same(
    { ...database.state(), error: 'set' },
    { ...second, error: 'set' },
    'everything else unchanged: same database type, loadedAt and reloads',
  );
  t.equal(forgotten, 1, 'onReload did not run');
  t.same(at(), SYDNEY, 'the locator still answers from v2');

  await replaceFile(path, v3);
  await waitFor(() => database.state().reloads === 2, 'the v3 reload');
  t.equal(database.state().error, null, 'a valid file clears the error');
  t.equal(database.state().databaseType, 'Test-v3', 'v3 is in use');
  t.same(locator.locate(client), { key: 'mmdb:IE', region: null, location: centreOf('IE'), country: 'IE' }, 'the locator answers from v3');

  await replaceFile(path, randomBytes(4096));
  await waitFor(() => database.state().error, 'random bytes to be refused');
  t.equal(database.state().reloads, 2, 'reloads unchanged');
  t.equal(database.state().databaseType, 'Test-v3', 'v3 stays in use');
  t.equal(forgotten, 2, 'onReload ran only for the valid files');
  t.equal(database.lookup('198.51.100.7').prefixLength, 24, 'lookups still work');

  await replaceFile(path, version('Test-v4', CITY_RICHMOND));
  await waitFor(() => database.state().reloads === 3, 'the v4 reload');
  t.equal(database.state().error, null, 'error cleared again');
  t.equal(forgotten, 3, 'onReload ran');
  t.same(at(), RICHMOND, 'the locator answers from v4');
});

t.test('GeoDatabase.open rejects a missing file and a file that is not a MaxMind DB, naming the path', async (t) => {
  const dir = await tempDir(t);
  const missing = join(dir, 'absent.mmdb');
  await t.rejects(GeoDatabase.open(missing, logger, () => {}), { message: `cannot read ${missing} as a MaxMind DB: ENOENT: no such file or directory, stat '${missing}'` }, 'missing');

  const text = join(dir, 'GeoLite2-City.csv');
  await writeFile(text, 'network,geoname_id\n198.51.100.0/24,4781708\n');
  await t.rejects(GeoDatabase.open(text, logger, () => {}), { message: new RegExp(`^cannot read ${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} as a MaxMind DB: `) }, 'a CSV file');

  const gzip = join(dir, 'GeoLite2-City.mmdb.gz');
  await writeFile(gzip, Buffer.from([0x1f, 0x8b, 0x08, 0x00, ...randomBytes(64)]));
  await t.rejects(GeoDatabase.open(gzip, logger, () => {}), { message: new RegExp(`^cannot read .*GeoLite2-City\\.mmdb\\.gz as a MaxMind DB: `) }, 'a gzip file');

  // A relative path is shown resolved.
  const good = join(dir, 'good.mmdb');
  await writeMmdb(good, { databaseType: 'GeoIP2-Country', ipVersion: 4, networks: [{ cidr: '203.0.113.0/24', data: COUNTRY_IE }] });
  const database = await openDatabase(t, relative(process.cwd(), good));
  t.equal(database.path, resolve(good), 'path is absolute');
  t.equal(database.state().path, resolve(good), 'state shows the absolute path');
  t.equal(database.state().ipVersion, 4, 'ipVersion');
});

/** The region that served a response: the debug header, cross-checked with the upstream's own label. */
function servedBy(res: TestResponse): string {
  if (res.status !== 200) return `${res.status}:${String(res.headers['x-meridian-error'])}`;
  const region = String(res.headers['x-meridian-region']);
  const label = String(res.headers['x-upstream']);
  return region === label ? region : `mismatch:${region}/${label}`;
}

t.test('end to end: X-Forwarded-For clients steered by the mmdb, geo state in the admin API', async (t) => {
  const dir = await tempDir(t);
  const mmdb = join(dir, 'GeoIP2-City.mmdb');
  await writeMmdb(mmdb, {
    databaseType: 'GeoIP2-City',
    ipVersion: 6,
    buildEpoch: 1_700_000_000,
    networks: [
      { cidr: '198.51.100.0/24', data: CITY_RICHMOND },
      { cidr: '203.0.113.0/24', data: COUNTRY_IE },
      { cidr: '2001:db8:1::/48', data: COUNTRY_IE },
    ],
  });
  const names = ['ap-south', 'us-east', 'eu-west'] as const;
  const ups = {} as Record<(typeof names)[number], TestUpstream>;
  for (const name of names) ups[name] = await startUpstream(name);
  t.teardown(async () => {
    await Promise.all(Object.values(ups).map((u) => u.kill()));
  });
  // Declared first and nearest to the node (Singapore): where unknown clients go.
  const m: TestMeridian = await startTestMeridian(
    {
      regions: {
        'ap-south': { location: { lat: 19.08, lon: 72.88 } },
        'us-east': { location: { lat: 38.9, lon: -77.04 } },
        'eu-west': { location: DUBLIN, countries: ['IE'] },
      },
      services: { web: { versions: { stable: { endpoints: Object.fromEntries(names.map((n) => [n, [ups[n].address]])) } } } },
      routes: { web: { pathPrefix: '/', service: 'web' } },
    },
    { proxy: { debugHeaders: true }, node: { location: SINGAPORE }, geo: { mmdb } },
    { dir },
  );
  t.teardown(() => m.close());

  const via = async (xff: string): Promise<string> => servedBy(await send(m.port, { headers: { 'x-forwarded-for': xff } }));
  t.equal(await via('198.51.100.7'), 'us-east', 'a City record near Virginia: us-east');
  t.equal(await via('203.0.113.9'), 'eu-west', 'a Country-only IE record: the region listing IE');
  t.equal(await via('2001:db8:1::5'), 'eu-west', 'an IPv6 client with a Country-only IE record');
  t.equal(await via('192.0.2.1'), 'ap-south', 'an address the database does not know: nearest to node.location');
  t.equal(await via('10.9.9.9, 198.51.100.7'), 'us-east', 'the right-most untrusted entry is the client');

  const state = await getJson<{ geo: GeoDatabaseState }>(m.adminPort, '/api/v1/state');
  t.same(
    { ...state.geo, loadedAt: typeof state.geo.loadedAt },
    { path: mmdb, databaseType: 'GeoIP2-City', ipVersion: 6, builtAt: '2023-11-14T22:13:20.000Z', loadedAt: 'string', reloads: 0, error: null },
    'the geo section of the admin state',
  );
  t.ok(Number.isFinite(Date.parse(state.geo.loadedAt)), 'loadedAt is a timestamp');
});

t.test('a Meridian start with a geo.mmdb that is not a MaxMind DB fails with a ConfigError on geo.mmdb', async (t) => {
  const dir = await tempDir(t);
  const routes = { regions: { 'eu-west': { location: DUBLIN } }, services: {}, routes: {} };
  for (const [name, bytes] of [
    ['notes.txt', Buffer.from('this is not a database\n')],
    ['half.mmdb', buildMmdb({ databaseType: 'GeoIP2-City', ipVersion: 4, networks: [{ cidr: '198.51.100.0/24', data: CITY_RICHMOND }] }).subarray(0, 100)],
    ['missing.mmdb', null],
  ] as const) {
    const file = join(dir, name);
    if (bytes !== null) await writeFile(file, bytes);
    let error: unknown = null;
    try {
      const m = await startTestMeridian(routes, { geo: { mmdb: file } }, { dir });
      await m.close();
    } catch (err) {
      error = err;
    }
    t.ok(error instanceof ConfigError, `${name}: a ConfigError`);
    const issues = (error as ConfigError).issues;
    t.same(issues.map((i) => i.path), ['geo.mmdb'], `${name}: one issue, on geo.mmdb`);
    t.match(issues[0]?.message, `cannot read ${file} as a MaxMind DB`, `${name}: the message names the file`);
  }
  t.equal((await readFile(join(dir, 'routes.yaml'), 'utf8')).includes('eu-west'), true, 'the routes file was written (the failure is the database)');
});
