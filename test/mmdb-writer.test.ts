import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open, Reader, type Response } from 'maxmind';
import t, { type Test } from 'tap';
import { buildMmdb, encodeMmdbValue, writeMmdb, type MmdbOptions, type MmdbValue } from './helpers/mmdb.js';

/** A GeoIP2-City-like record, typed as MaxMind types it. */
const DUBLIN: MmdbValue = {
  city: { geoname_id: 2964574, names: { en: 'Dublin', de: 'Dublin' } },
  country: { geoname_id: 2963597, iso_code: 'IE', names: { en: 'Ireland', de: 'Irland' } },
  location: { accuracy_radius: { uint16: 50 }, latitude: { double: 53.3331 }, longitude: { double: -6.2489 }, time_zone: 'Europe/Dublin' },
};
const DUBLIN_DECODED = {
  city: { geoname_id: 2964574, names: { en: 'Dublin', de: 'Dublin' } },
  country: { geoname_id: 2963597, iso_code: 'IE', names: { en: 'Ireland', de: 'Irland' } },
  location: { accuracy_radius: 50, latitude: 53.3331, longitude: -6.2489, time_zone: 'Europe/Dublin' },
};
/** An ip-location-db dbip-city-like record: its converter writes latitude/longitude as 32-bit floats. */
const FRANKFURT: MmdbValue = { city: 'Frankfurt am Main', country_code: 'DE', latitude: { float: 50.1109 }, longitude: { float: 8.6821 }, timezone: 'Europe/Berlin' };
const FRANKFURT_DECODED = { city: 'Frankfurt am Main', country_code: 'DE', latitude: Math.fround(50.1109), longitude: Math.fround(8.6821), timezone: 'Europe/Berlin' };
/** A whole-degree coordinate: as a plain number it would be a uint32. */
const EQUATOR: MmdbValue = { country_code: 'EC', latitude: { double: 0 }, longitude: { double: -78 } };

const BUILD_EPOCH = 1_700_000_000;

/** IPv4 and IPv6 networks, nested, given longest first to show order does not matter. */
const MIXED: MmdbOptions['networks'] = [
  { cidr: '2001:db8:1::/48', data: FRANKFURT },
  { cidr: '10.1.2.0/24', data: 'ten-one-two' },
  { cidr: '10.0.0.0/8', data: DUBLIN },
  { cidr: '2001:db8::/32', data: EQUATOR },
];

function readerOf(options: MmdbOptions): Reader<Response> {
  return new Reader<Response>(buildMmdb(options));
}

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'meridian-mmdb-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Asserts each address resolves to `[record, prefixLength]`. */
function expectLookups(t: Test, reader: Reader<Response>, expected: Record<string, [unknown, number]>): void {
  for (const [address, want] of Object.entries(expected)) t.same(reader.getWithPrefixLength(address), want, address);
}

t.test('nested networks: the longest prefix wins, and the prefix length is where the walk stopped', async (t) => {
  const reader = readerOf({
    databaseType: 'Meridian-Test',
    ipVersion: 4,
    networks: [
      { cidr: '10.1.2.0/24', data: 'c' },
      { cidr: '10.0.0.0/8', data: 'a' },
      { cidr: '10.1.0.0/16', data: 'b' },
      { cidr: '192.0.2.128/25', data: 'd' },
      { cidr: '198.51.100.0/24', data: 'e' },
    ],
  });
  // A network that holds a more specific one is split around it, so an address
  // in the rest reports the largest block that holds no more specific network
  // (libmaxminddb reports the same). Networks with nothing inside are exact.
  expectLookups(t, reader, {
    '10.1.2.3': ['c', 24],
    '10.1.2.255': ['c', 24],
    '10.1.3.1': ['b', 24],
    '10.1.128.1': ['b', 17],
    '10.128.0.1': ['a', 9],
    '10.9.9.9': ['a', 13],
    '192.0.2.200': ['d', 25],
    '198.51.100.7': ['e', 24],
    // Misses stop at the first bit with no record.
    '192.0.2.1': [null, 25],
    '11.0.0.1': [null, 8],
    '128.0.0.1': [null, 2],
  });
  t.equal(reader.get('10.1.2.3'), 'c');
  t.equal(reader.get('11.0.0.1'), null);
});

t.test('an IPv6 database holds IPv4 networks under ::/96', async (t) => {
  const reader = readerOf({ databaseType: 'Meridian-Test', ipVersion: 6, networks: MIXED });
  expectLookups(t, reader, {
    '10.1.2.3': ['ten-one-two', 24],
    '10.9.9.9': [DUBLIN_DECODED, 13],
    '::10.1.2.3': ['ten-one-two', 120],
    '::a09:909': [DUBLIN_DECODED, 109],
    '2001:db8:1::1': [FRANKFURT_DECODED, 48],
    '2001:db8:ffff::1': [{ country_code: 'EC', latitude: 0, longitude: -78 }, 33],
    '11.0.0.1': [null, 8],
    '2001:db9::1': [null, 32],
    '3000::1': [null, 4],
    // IPv4-mapped addresses are not aliased to ::/96.
    '::ffff:10.1.2.3': [null, 81],
  });

  const ipv6Only = readerOf({ databaseType: 'Meridian-Test', ipVersion: 6, networks: [{ cidr: '2001:db8::/32', data: 'x' }] });
  t.same(ipv6Only.getWithPrefixLength('192.0.2.1'), [null, 0], 'no IPv4 subtree: IPv4 lookups miss at once');
  t.same(ipv6Only.getWithPrefixLength('2001:db8::1'), ['x', 32]);
});

t.test('record sizes 24, 28 and 32 give the same answers', async (t) => {
  for (const recordSize of [24, 28, 32] as const) {
    const reader = readerOf({ databaseType: 'Meridian-Test', ipVersion: 6, recordSize, networks: MIXED });
    t.equal(reader.metadata.recordSize, recordSize);
    t.equal(reader.metadata.nodeByteSize, recordSize / 4);
    expectLookups(t, reader, {
      '10.1.2.3': ['ten-one-two', 24],
      '10.128.0.1': [DUBLIN_DECODED, 9],
      '2001:db8:1:2::3': [FRANKFURT_DECODED, 48],
      '2001:db9::1': [null, 32],
    });
  }
});

/**
 * Networks whose 28-bit records need a top nibble: a 16 MiB record between
 * "early" and "late" in the data section pushes every pointer to "late" past 2^24.
 */
const NIBBLES: MmdbOptions = {
  databaseType: 'Meridian-Test',
  ipVersion: 4,
  networks: [
    { cidr: '10.0.0.0/9', data: 'early' },
    { cidr: '192.0.2.0/24', data: { bytes: Buffer.alloc(2 ** 24, 7) } },
    { cidr: '10.128.0.0/9', data: 'late' },
    { cidr: '172.16.0.0/13', data: 'late' },
    { cidr: '172.24.0.0/13', data: 'early' },
  ],
};
const NIBBLE_LOOKUPS: Record<string, [unknown, number]> = {
  '10.1.0.1': ['early', 9],
  '10.200.0.1': ['late', 9],
  '172.17.0.1': ['late', 13],
  '172.25.0.1': ['early', 13],
};

t.test('28-bit records carry their top nibbles in the middle byte', async (t) => {
  t.throws(() => buildMmdb({ ...NIBBLES, recordSize: 24 }), { name: 'RangeError', message: /records of 24 bits/ });
  const bytes = buildMmdb({ ...NIBBLES, recordSize: 28 });
  // Nodes are numbered depth first and 10.0.0.0/8's path comes first: its node is number 8.
  t.equal(bytes[8 * 7 + 3], 0x01, 'high nibble: left record (early) 0, low nibble: right record (late) 1');
  const reader = new Reader<Response>(bytes);
  expectLookups(t, reader, { ...NIBBLE_LOOKUPS, '192.0.2.1': [Buffer.alloc(2 ** 24, 7), 24] });
});

t.test('metadata', async (t) => {
  const reader = readerOf({
    databaseType: 'GeoIP2-City',
    ipVersion: 4,
    recordSize: 24,
    networks: [{ cidr: '10.0.0.0/8', data: DUBLIN }],
    languages: ['de', 'en'],
    description: { en: 'Meridian test database', de: 'Meridian-Testdatenbank' },
    buildEpoch: BUILD_EPOCH,
  });
  const m = reader.metadata;
  t.equal(m.nodeCount, 8, 'one node per bit of the /8');
  t.equal(m.recordSize, 24);
  t.equal(m.ipVersion, 4);
  t.equal(m.databaseType, 'GeoIP2-City');
  t.same(m.languages, ['de', 'en']);
  t.equal(m.binaryFormatMajorVersion, 2);
  t.equal(m.binaryFormatMinorVersion, 0);
  t.equal(m.buildEpoch.getTime(), BUILD_EPOCH * 1000);
  t.same(m.description, { en: 'Meridian test database', de: 'Meridian-Testdatenbank' });
  t.equal(m.searchTreeSize, 8 * 6);

  const before = Math.floor(Date.now() / 1000);
  const defaults = readerOf({ databaseType: 'Meridian-Test', ipVersion: 6, networks: [] }).metadata;
  t.equal(defaults.nodeCount, 1, 'an empty tree is one node with two empty records');
  t.equal(defaults.recordSize, 28);
  t.equal(defaults.ipVersion, 6);
  t.same(defaults.languages, []);
  t.same(defaults.description, {});
  t.ok(defaults.buildEpoch.getTime() >= before * 1000 && defaults.buildEpoch.getTime() <= Date.now(), 'build epoch defaults to now');
  t.equal(readerOf({ databaseType: 'Meridian-Test', ipVersion: 6, networks: [{ cidr: '10.0.0.0/8', data: 'a' }] }).metadata.nodeCount, 104);
});

t.test('values keep their types', async (t) => {
  const long = 'x'.repeat(70_000);
  const record: MmdbValue = {
    text: 'Zürich ✓',
    empty: '',
    long,
    count: 4_294_967_295,
    tooBigForUint32: 4_294_967_296,
    negative: -3,
    fraction: 0.25,
    yes: true,
    no: false,
    port: { uint16: 443 },
    asn: { uint32: 0 },
    offset: { int32: -2_147_483_648 },
    positive: { int32: 7 },
    huge: { uint64: 2n ** 64n - 1n },
    wider: { uint128: 2n ** 100n + 1n },
    ratio: { double: 2 },
    rough: { float: 0.1 },
    raw: { bytes: Uint8Array.from([0, 1, 255]) },
    list: [1, 'two', [3], { four: 4 }],
    many: Array.from({ length: 300 }, (_, i) => i),
    nested: { a: { b: { c: [] } }, empty: {} },
  };
  const reader = readerOf({ databaseType: 'Meridian-Test', ipVersion: 4, networks: [{ cidr: '192.0.2.0/24', data: record }] });
  t.same(reader.get('192.0.2.1'), {
    text: 'Zürich ✓',
    empty: '',
    long,
    count: 4_294_967_295,
    tooBigForUint32: 4_294_967_296,
    negative: -3,
    fraction: 0.25,
    yes: true,
    no: false,
    port: 443,
    asn: 0,
    offset: -2_147_483_648,
    positive: 7,
    huge: 2n ** 64n - 1n,
    wider: 2n ** 100n + 1n,
    ratio: 2,
    rough: Math.fround(0.1),
    raw: Buffer.from([0, 1, 255]),
    list: [1, 'two', [3], { four: 4 }],
    many: Array.from({ length: 300 }, (_, i) => i),
    nested: { a: { b: { c: [] } }, empty: {} },
  });
});

t.test('encodings match the spec byte for byte', async (t) => {
  const hex = (value: MmdbValue): string => encodeMmdbValue(value).toString('hex');
  t.equal(hex(0), 'c0', 'uint32 zero has no payload');
  t.equal(hex(500), 'c201f4', 'plain integer: uint32, shortest form');
  t.equal(hex(2 ** 32), '6841f0000000000000', 'too big for uint32: double');
  t.equal(hex(-1), '68bff0000000000000', 'negative: double');
  t.equal(hex(1.5), '683ff8000000000000', 'fraction: double');
  t.equal(hex({ uint16: 443 }), 'a201bb');
  t.equal(hex({ int32: -1 }), '0401ffffffff', 'negative int32 takes all 4 bytes');
  t.equal(hex({ int32: 1 }), '010101');
  t.equal(hex({ uint64: 1n }), '010201');
  t.equal(hex({ uint128: 0n }), '0003');
  t.equal(hex({ float: 1.5 }), '04083fc00000');
  t.equal(hex(true), '0107');
  t.equal(hex(false), '0007');
  t.equal(hex([]), '0004');
  t.equal(hex({}), 'e0');
  t.equal(hex({ a: 'b' }), 'e141614162');
  t.equal(hex('x'.repeat(28)).slice(0, 2), '5c', '28 bytes: size in the control byte');
  t.equal(hex('x'.repeat(29)).slice(0, 4), '5d00', '29 bytes: one size byte');
  t.equal(hex('x'.repeat(285)).slice(0, 6), '5e0000', '285 bytes: two size bytes');
  t.equal(hex('x'.repeat(65_821)).slice(0, 8), '5f000000', '65821 bytes: three size bytes');
  t.equal(hex(Array.from({ length: 29 }, () => 0)).slice(0, 6), '1d0400', 'extended type byte comes before the size bytes');
});

t.test('identical records are stored once', async (t) => {
  const bytes = buildMmdb({
    databaseType: 'Meridian-Test',
    ipVersion: 6,
    networks: [
      { cidr: '10.0.0.0/8', data: DUBLIN },
      { cidr: '172.16.0.0/12', data: DUBLIN },
      { cidr: '2001:db8::/32', data: DUBLIN },
      { cidr: '2001:db8:1::/48', data: FRANKFURT },
    ],
  });
  t.equal(bytes.indexOf('Europe/Dublin'), bytes.lastIndexOf('Europe/Dublin'));
  const reader = new Reader<Response>(bytes);
  t.same(reader.get('172.16.5.5'), DUBLIN_DECODED);
  t.same(reader.get('2001:db8:1::1'), FRANKFURT_DECODED);
});

t.test('bad input is refused with the reason', async (t) => {
  const build = (cidr: string, data: MmdbValue = 'x', ipVersion: 4 | 6 = 6) => () => buildMmdb({ databaseType: 'T', ipVersion, networks: [{ cidr, data }] });
  t.throws(build('10.0.0.1/8'), { message: '10.0.0.1/8 has host bits set' });
  t.throws(build('10.0.0.0'), { message: '10.0.0.0 is not a CIDR network' });
  t.throws(build('10.0.0.0/8/8'), { message: /is not a CIDR network/ });
  t.throws(build('example.com/8'), { message: /is not a CIDR network/ });
  t.throws(build('10.0.0.0/33'), { message: /prefix length must be 1\.\.32/ });
  t.throws(build('::/0'), { message: /prefix length must be 1\.\.128/ });
  t.throws(build('2001:db8::/32', 'x', 4), { message: '2001:db8::/32 is IPv6 but the database is IPv4' });
  t.throws(build('10.0.0.0/8', { uint16: 70_000 }), { name: 'RangeError', message: 'uint16 70000 is out of range' });
  t.throws(build('10.0.0.0/8', { uint32: 1.5 }), { name: 'RangeError', message: 'uint32 1.5 is not an integer' });
  t.throws(build('10.0.0.0/8', { int32: 2 ** 31 }), { name: 'RangeError' });
  t.throws(build('10.0.0.0/8', { uint64: -1n }), { name: 'RangeError' });
  t.throws(build('10.0.0.0/8', { uint128: 2n ** 128n }), { name: 'RangeError' });
  t.throws(build('10.0.0.0/8', { double: 'north' } as unknown as MmdbValue), { name: 'TypeError', message: '{ double: ... } needs a number, got string' });
});

t.test('writeMmdb writes a file that maxmind.open reads', async (t) => {
  const file = join(await tempDir(t), 'city.mmdb');
  await writeMmdb(file, { databaseType: 'GeoIP2-City', ipVersion: 6, networks: MIXED, buildEpoch: BUILD_EPOCH });
  t.same(await readFile(file), buildMmdb({ databaseType: 'GeoIP2-City', ipVersion: 6, networks: MIXED, buildEpoch: BUILD_EPOCH }));
  const reader = await open<Response>(file);
  t.same(reader.getWithPrefixLength('10.2.3.4'), [DUBLIN_DECODED, 15]);
  t.equal(reader.metadata.databaseType, 'GeoIP2-City');
});

const MMDBLOOKUP_MISSING =
  'mmdblookup (libmaxminddb) is not installed, so written files cannot be checked against the reference reader; install it (Debian/Ubuntu: apt-get install -y mmdb-bin)';

/** Runs `mmdblookup ARGS`; rejects with an install hint when the binary is missing. */
function mmdblookup(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('mmdblookup', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? new Error(MMDBLOOKUP_MISSING) : err));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The value at `path` in the record for `ip`, with the type name libmaxminddb decoded it as. */
async function lookedUp(file: string, ip: string, ...path: string[]): Promise<{ value: string; type: string }> {
  const run = await mmdblookup(['--file', file, '--ip', ip, ...path]);
  const match = /^\s*(.+?) <(\w+)>\s*$/.exec(run.stdout);
  if (run.code !== 0 || !match) throw new Error(`mmdblookup ${ip} ${path.join(' ')} exited ${run.code}: ${run.stdout}${run.stderr}`);
  return { value: match[1] ?? '', type: match[2] ?? '' };
}

/** `mmdblookup --verbose`: the metadata lines (label -> text) and the prefix length it found. */
async function verbose(file: string, ip: string): Promise<{ code: number | null; fields: Map<string, string>; prefixLength: number }> {
  const run = await mmdblookup(['--verbose', '--file', file, '--ip', ip]);
  const fields = new Map([...run.stdout.matchAll(/^ {4,6}([\w ]+):[ \t]+(.+)$/gm)].map((m) => [m[1] ?? '', m[2] ?? '']));
  const prefix = /Record prefix length: (\d+)/.exec(run.stdout);
  if (!prefix) throw new Error(`mmdblookup --verbose printed no prefix length (exit ${run.code}): ${run.stdout}${run.stderr}`);
  return { code: run.code, fields, prefixLength: Number(prefix[1]) };
}

t.test('libmaxminddb (mmdblookup) reads the files the same way', async (t) => {
  const dir = await tempDir(t);
  for (const recordSize of [24, 28, 32] as const) {
    const file = join(dir, `mixed-${recordSize}.mmdb`);
    await writeMmdb(file, {
      databaseType: 'GeoIP2-City',
      ipVersion: 6,
      recordSize,
      networks: MIXED,
      languages: ['en', 'de'],
      description: { en: 'Meridian test database', de: 'Meridian-Testdatenbank' },
      buildEpoch: BUILD_EPOCH,
    });
    const nodeCount = new Reader<Response>(await readFile(file)).metadata.nodeCount;

    // libmaxminddb refuses to open a file whose metadata has the wrong types.
    const hit = await verbose(file, '2001:db8:1::1');
    t.equal(hit.code, 0);
    t.equal(hit.fields.get('Node count'), String(nodeCount));
    t.equal(hit.fields.get('Record size'), `${recordSize} bits`);
    t.equal(hit.fields.get('IP version'), 'IPv6');
    t.equal(hit.fields.get('Binary format'), '2.0');
    t.match(hit.fields.get('Build epoch'), /^1700000000 \(2023-11-14 22:13:20 UTC\)$/);
    t.equal(hit.fields.get('Type'), 'GeoIP2-City');
    t.equal(hit.fields.get('Languages')?.trim(), 'en de');
    t.equal(hit.fields.get('en'), 'Meridian test database');
    t.equal(hit.fields.get('de'), 'Meridian-Testdatenbank');
    t.equal(hit.prefixLength, 48);

    t.equal((await verbose(file, '10.1.2.3')).prefixLength, 120, 'IPv4 under ::/96: 96 + 24');
    t.equal((await verbose(file, '10.9.9.9')).prefixLength, 109, 'the split /8 reports the same piece as maxmind');
    const miss = await verbose(file, '11.0.0.1');
    t.equal(miss.code, 6, 'exit code for "no entry"');
    t.equal(miss.prefixLength, 104);

    t.same(await lookedUp(file, '10.9.9.9', 'country', 'iso_code'), { value: '"IE"', type: 'utf8_string' });
    t.same(await lookedUp(file, '10.9.9.9', 'country', 'geoname_id'), { value: '2963597', type: 'uint32' });
    t.same(await lookedUp(file, '10.9.9.9', 'location', 'latitude'), { value: '53.333100', type: 'double' });
    t.same(await lookedUp(file, '10.9.9.9', 'location', 'accuracy_radius'), { value: '50', type: 'uint16' });
    t.same(await lookedUp(file, '10.1.2.3'), { value: '"ten-one-two"', type: 'utf8_string' });
    t.same(await lookedUp(file, '2001:db8:1::1', 'latitude'), { value: '50.110901', type: 'float' });
    t.same(await lookedUp(file, '2001:db8:ffff::1', 'latitude'), { value: '0.000000', type: 'double' });
  }

  const ipv4 = join(dir, 'ipv4.mmdb');
  await writeMmdb(ipv4, { databaseType: 'Meridian-Test', ipVersion: 4, recordSize: 24, networks: [{ cidr: '10.0.0.0/8', data: DUBLIN }, { cidr: '10.1.2.0/24', data: 'c' }] });
  const v4 = await verbose(ipv4, '10.9.9.9');
  t.equal(v4.fields.get('IP version'), 'IPv4');
  t.equal(v4.prefixLength, 13);

  const nibbles = join(dir, 'nibbles.mmdb');
  await writeMmdb(nibbles, { ...NIBBLES, recordSize: 28 });
  for (const [address, [value, prefixLength]] of Object.entries(NIBBLE_LOOKUPS)) {
    t.same(await lookedUp(nibbles, address), { value: `"${String(value)}"`, type: 'utf8_string' }, `28-bit record for ${address}`);
    t.equal((await verbose(nibbles, address)).prefixLength, prefixLength);
  }

  // Every value type through libmaxminddb's strict decoder.
  const types = join(dir, 'types.mmdb');
  await writeMmdb(types, {
    databaseType: 'Meridian-Test',
    ipVersion: 6,
    networks: [{ cidr: '2001:db8::/32', data: { i: { int32: -5 }, u64: { uint64: 2n ** 64n - 1n }, u128: { uint128: 2n ** 100n }, yes: true, raw: { bytes: Uint8Array.from([1, 2, 3]) }, list: [1, 'x'] } }],
  });
  t.same(await lookedUp(types, '2001:db8::1', 'i'), { value: '-5', type: 'int32' });
  t.same(await lookedUp(types, '2001:db8::1', 'u64'), { value: '18446744073709551615', type: 'uint64' });
  t.same(await lookedUp(types, '2001:db8::1', 'u128'), { value: '0x00000010000000000000000000000000', type: 'uint128' });
  t.same(await lookedUp(types, '2001:db8::1', 'yes'), { value: 'true', type: 'boolean' });
  t.same(await lookedUp(types, '2001:db8::1', 'raw'), { value: '010203', type: 'bytes' });
  t.same(await lookedUp(types, '2001:db8::1', 'list', '1'), { value: '"x"', type: 'utf8_string' });
});
