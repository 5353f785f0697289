/**
 * GeoDNS fuzzing over real sockets: valid queries built with dns-packet, then
 * ~80k UDP and ~25k TCP messages made from them by mutation (bit flips, byte
 * overwrites, truncation at every length, garbage tails, extreme header counts,
 * label lengths over 63, compression pointer loops, bogus OPT/ECS lengths) and
 * fully random buffers. The server must not throw, crash or hang; every answer
 * must decode, carry its query's id and QR, and copy its question; every query
 * with a header gets an answer; and afterwards a plain query is answered right.
 *
 * Everything random comes from one seed, printed in the test name; rerun a
 * failure with DNS_FUZZ_SEED=<seed>.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import dnsPacket, { type Answer, type DecodedPacket, type OptAnswer, type RecordType } from 'dns-packet';
import t, { type Test } from 'tap';
import { getJson, send } from './helpers/client.js';
import { startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { startUpstream } from './helpers/upstream.js';
import { Rng } from './helpers/rng.js';

const SEED = Number(process.env.DNS_FUZZ_SEED ?? 0x5eed_d175) >>> 0;
const ZONE = 'example.com';
const WWW_V4 = ['203.0.113.10', '203.0.113.11'];
const WWW_V6 = ['2001:db8::10'];
/** Enough addresses that A/AAAA answers for big.example.com exceed 512 (and, for AAAA, 1232) bytes: truncation paths. */
const BIG_V4 = Array.from({ length: 40 }, (_, i) => `198.18.0.${i + 1}`);
const BIG_V6 = Array.from({ length: 48 }, (_, i) => `2001:db8:b16::${(i + 1).toString(16)}`);

const UDP_PEERS = 4;
/** Datagrams in flight at once. */
const UDP_WINDOW = 192;
/**
 * Bytes in flight at once, counting ~1 KiB of kernel overhead per datagram: well
 * under the server socket's default receive buffer (208 KiB on Linux), so the
 * kernel does not drop what a window sends in one burst.
 */
const UDP_WINDOW_BYTES = 120_000;
/** How long a UDP window waits for its last answers; queries lost by the kernel cost this once. */
const UDP_WINDOW_WAIT_MS = 250;
const UDP_MUTANTS = 62_000;
const UDP_RANDOM = 8_000;
const TCP_CONNECTIONS = 8;
const TCP_MESSAGES_PER_CONNECTION = 2_900;
const TCP_ABUSERS_PER_KIND = 25;

const FLAG_QR = 0x8000;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const RCODE_SERVFAIL = 2;
const RCODE_NOTIMP = 4;
const HEADER = 12;

// ---------------------------------------------------------------- seeds

/** What a structurally valid seed must be answered with. */
interface Expect {
  readonly rcode: string;
  /** The OPT's extended rcode (1 with header NOERROR is BADVERS). */
  readonly extendedRcode?: number;
  /** Exact A records, when the answer must carry them. */
  readonly a?: readonly string[];
}

interface Seed {
  readonly label: string;
  readonly bytes: Buffer;
  readonly expect: Expect;
  /** Offset of the OPT record dns-packet appended last, null without one. */
  readonly optAt: number | null;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n & 0xffff);
  return b;
}

function header(flags: number, qd: number, an: number, ns: number, ar: number): Buffer {
  return Buffer.concat([u16(0), u16(flags), u16(qd), u16(an), u16(ns), u16(ar)]);
}

function wireName(name: string): Buffer {
  const labels = name === '.' ? [] : name.split('.');
  return Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])), Buffer.from([0])]);
}

function wireQuestion(name: string, type = 1, klass = 1): Buffer {
  return Buffer.concat([wireName(name), u16(type), u16(klass)]);
}

/** An OPT record written by hand, so its lengths can lie. */
function rawOpt(o: { owner?: Buffer; udpSize?: number; ext?: number; version?: number; flags?: number; rdata?: Buffer; rdlen?: number }): Buffer {
  const rdata = o.rdata ?? Buffer.alloc(0);
  return Buffer.concat([o.owner ?? Buffer.from([0]), u16(41), u16(o.udpSize ?? 1232), Buffer.from([o.ext ?? 0, o.version ?? 0]), u16(o.flags ?? 0), u16(o.rdlen ?? rdata.length), rdata]);
}

function option(code: number, data: Buffer, declared = data.length): Buffer {
  return Buffer.concat([u16(code), u16(declared), data]);
}

function ecsData(family: number, source: number, scope: number, address: Buffer): Buffer {
  return Buffer.concat([u16(family), Buffer.from([source, scope]), address]);
}

/** `base` with `records` appended and the count of `section` (0 answer, 1 authority, 2 additional) raised. */
function appendRecords(base: Buffer, section: 0 | 1 | 2, count: number, ...records: Buffer[]): Buffer {
  const out = Buffer.concat([base, ...records]);
  const at = 6 + 2 * section;
  out.writeUInt16BE((out.readUInt16BE(at) + count) & 0xffff, at);
  return out;
}

function opt(extra: Partial<OptAnswer> = {}): OptAnswer {
  return { type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [], ...extra };
}

const LONG_NAME = `${'x'.repeat(63)}.${'y'.repeat(63)}.${'z'.repeat(60)}.${ZONE}`;
const MANY_LABELS = `${'a.'.repeat(115)}${ZONE}`;

/** Names asked, with the rcode each gets without EDNS trouble. */
const NAMES: readonly (readonly [string, string])[] = [
  ['www.example.com', 'NOERROR'],
  ['WwW.ExAmPlE.cOm', 'NOERROR'],
  ['big.example.com', 'NOERROR'],
  [ZONE, 'NOERROR'],
  ['nope.example.com', 'NXDOMAIN'],
  ['a.b.c.d.www.example.com', 'NXDOMAIN'],
  ['ns1.example.com', 'NXDOMAIN'],
  [LONG_NAME, 'NXDOMAIN'],
  [MANY_LABELS, 'NXDOMAIN'],
  ['www.example.org', 'REFUSED'],
  ['example.net', 'REFUSED'],
  ['com', 'REFUSED'],
];
// dns-packet's types leave ANY out of RecordType, though it encodes it.
const TYPES = ['A', 'AAAA', 'ANY', 'SOA', 'NS', 'MX', 'TXT'] as RecordType[];
const EDNS_VARIANTS: readonly (readonly [string, OptAnswer])[] = [
  ['edns', opt()],
  ['edns-do-4096', opt({ udpPayloadSize: 4096, flags: dnsPacket.DNSSEC_OK })],
  ['edns-size-0', opt({ udpPayloadSize: 0 })],
  ['ecs4/24', opt({ options: [{ code: 8, family: 1, sourcePrefixLength: 24, scopePrefixLength: 0, ip: '198.51.100.0' }] })],
  ['ecs4/32', opt({ options: [{ code: 8, family: 1, sourcePrefixLength: 32, scopePrefixLength: 0, ip: '198.51.100.7' }] })],
  ['ecs4/0', opt({ options: [{ code: 8, family: 1, sourcePrefixLength: 0, scopePrefixLength: 0, ip: '0.0.0.0' }] })],
  ['ecs6/56', opt({ options: [{ code: 8, family: 2, sourcePrefixLength: 56, scopePrefixLength: 0, ip: '2001:db8:1:200::' }] })],
  ['ecs6/128', opt({ options: [{ code: 8, family: 2, sourcePrefixLength: 128, scopePrefixLength: 0, ip: '2001:db8::1' }] })],
  ['ecs6/0', opt({ options: [{ code: 8, family: 2, sourcePrefixLength: 0, scopePrefixLength: 0, ip: '::' }] })],
  ['edns-version-1', opt({ ednsVersion: 1 })],
];

function expectFor(name: string, rcode: string, type: string, badvers: boolean): Expect {
  if (badvers) return { rcode: 'NOERROR', extendedRcode: 1 };
  const www = name.toLowerCase() === 'www.example.com';
  return www && type === 'A' ? { rcode, a: WWW_V4 } : { rcode };
}

function buildSeeds(): Seed[] {
  const seeds: Seed[] = [];
  let n = 0;
  const query = (name: string, type: RecordType, additionals: Answer[] = []): Buffer =>
    dnsPacket.encode({ type: 'query', id: 0, flags: n++ % 2 === 0 ? dnsPacket.RECURSION_DESIRED : 0, questions: [{ name, type, class: 'IN' }], additionals });
  for (const [name, rcode] of NAMES) {
    for (const type of TYPES) seeds.push({ label: `${type} ${name}`, bytes: query(name, type), expect: expectFor(name, rcode, type, false), optAt: null });
  }
  const ednsTargets: readonly (readonly [string, RecordType])[] = [
    ['www.example.com', 'A'],
    ['www.example.com', 'AAAA'],
    ['big.example.com', 'AAAA'],
    [ZONE, 'SOA'],
    ['nope.example.com', 'A'],
    ['www.example.org', 'A'],
  ];
  for (const [variant, record] of EDNS_VARIANTS) {
    for (const [name, type] of ednsTargets) {
      const rcode = (NAMES.find(([n]) => n === name) as readonly [string, string])[1];
      const bytes = query(name, type, [record]);
      seeds.push({ label: `${type} ${name} ${variant}`, bytes, expect: expectFor(name, rcode, type, record.ednsVersion > 0), optAt: query(name, type).length });
    }
  }
  const www = wireQuestion('www.example.com');
  const txtAtQuestion = Buffer.from([0xc0, HEADER, 0, 16, 0, 1, 0, 0, 0, 0, 0, 2, 1, 0x78]);
  const aAtQuestion = Buffer.from([0xc0, HEADER, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
  const plain = Buffer.concat([header(FLAG_RD, 1, 0, 0, 0), www]);
  const ecs = (data: Buffer, declared?: number): Buffer => appendRecords(plain, 2, 1, rawOpt({ rdata: option(8, data, declared) }));
  const crafted: readonly (readonly [string, Buffer, Expect])[] = [
    ['additional record owned by a pointer to the question', appendRecords(plain, 2, 1, txtAtQuestion), { rcode: 'NOERROR', a: WWW_V4 }],
    ['pointer-owned record, then OPT', appendRecords(plain, 2, 2, txtAtQuestion, rawOpt({})), { rcode: 'NOERROR', a: WWW_V4 }],
    ['answer section in a query, pointer owner', appendRecords(plain, 0, 1, aAtQuestion), { rcode: 'NOERROR', a: WWW_V4 }],
    ['class ANY', Buffer.concat([header(0, 1, 0, 0, 0), wireQuestion('www.example.com', 1, 255)]), { rcode: 'NOERROR', a: WWW_V4 }],
    ['private type 65280', Buffer.concat([header(0, 1, 0, 0, 0), wireQuestion('www.example.com', 65280)]), { rcode: 'NOERROR' }],
    ['class CH', Buffer.concat([header(0, 1, 0, 0, 0), wireQuestion('version.bind', 16, 3)]), { rcode: 'REFUSED' }],
    ['AXFR', Buffer.concat([header(0, 1, 0, 0, 0), wireQuestion(ZONE, 252)]), { rcode: 'REFUSED' }],
    ['IXFR', Buffer.concat([header(0, 1, 0, 0, 0), wireQuestion(ZONE, 251)]), { rcode: 'REFUSED' }],
    ['root name', Buffer.concat([header(0, 1, 0, 0, 0), wireQuestion('.', 2)]), { rcode: 'REFUSED' }],
    ['opcode IQUERY', Buffer.concat([header(1 << 11, 1, 0, 0, 0), www]), { rcode: 'NOTIMP' }],
    ['opcode STATUS', Buffer.concat([header(2 << 11, 1, 0, 0, 0), www]), { rcode: 'NOTIMP' }],
    ['qdcount 0', header(0, 0, 0, 0, 0), { rcode: 'FORMERR' }],
    ['two questions', Buffer.concat([header(0, 2, 0, 0, 0), www, www]), { rcode: 'FORMERR' }],
    ['question name is a pointer to itself', Buffer.concat([header(0, 1, 0, 0, 0), Buffer.from([0xc0, HEADER, 0, 1, 0, 1])]), { rcode: 'FORMERR' }],
    ['question name points into the header', Buffer.concat([header(0, 1, 0, 0, 0), Buffer.from([0xc0, 4, 0, 1, 0, 1])]), { rcode: 'FORMERR' }],
    ['OPT not owned by the root', appendRecords(plain, 2, 1, rawOpt({ owner: Buffer.from([0xc0, HEADER]) })), { rcode: 'FORMERR' }],
    ['two OPT records', appendRecords(plain, 2, 2, rawOpt({}), rawOpt({})), { rcode: 'FORMERR' }],
    ['ECS family 3', ecs(ecsData(3, 8, 0, Buffer.from([10]))), { rcode: 'FORMERR' }],
    ['ECS scope in a query', ecs(ecsData(1, 24, 24, Buffer.from([10, 1, 2]))), { rcode: 'FORMERR' }],
    ['ECS IPv4 /33', ecs(ecsData(1, 33, 0, Buffer.from([10, 1, 2, 3, 4]))), { rcode: 'FORMERR' }],
    ['ECS /24 with 4 address bytes', ecs(ecsData(1, 24, 0, Buffer.from([10, 1, 2, 3]))), { rcode: 'FORMERR' }],
    ['ECS option 2 bytes long', ecs(Buffer.from([0, 1])), { rcode: 'FORMERR' }],
    ['two ECS options', appendRecords(plain, 2, 1, rawOpt({ rdata: Buffer.concat([option(8, ecsData(1, 8, 0, Buffer.from([10]))), option(8, ecsData(1, 8, 0, Buffer.from([10])))]) })), { rcode: 'FORMERR' }],
    ['ECS IPv6 /64', ecs(ecsData(2, 64, 0, Buffer.from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1]))), { rcode: 'NOERROR', a: WWW_V4 }],
  ];
  for (const [label, bytes, expect] of crafted) seeds.push({ label, bytes, expect, optAt: null });
  return seeds;
}

// ---------------------------------------------------------------- mutation

/** Offsets of the question name's length bytes (stops at the first that is not a plain label). */
function labelStarts(b: Buffer): number[] {
  const starts: number[] = [];
  for (let at = HEADER; at < b.length; at += 1 + (b[at] as number)) {
    starts.push(at);
    if (b[at] === 0 || (b[at] as number) > 63) break;
  }
  return starts;
}

/** The question's bytes (name, type, class) when its name is made of plain labels, else null. */
function questionBytes(b: Buffer): Buffer | null {
  let at = HEADER;
  while (at < b.length) {
    const length = b[at] as number;
    if (length === 0) return at + 5 <= b.length ? b.subarray(HEADER, at + 5) : null;
    if (length > 63) return null;
    at += 1 + length;
  }
  return null;
}

function bogusOpt(rng: Rng): Buffer {
  const options: Buffer[] = [];
  for (let i = rng.int(4); i > 0; i--) {
    const code = rng.pick([8, 8, 8, 3, 10, 11, 12, 14, rng.int(65_536)]);
    const data =
      code === 8
        ? ecsData(rng.pick([0, 1, 2, 3, 0xffff]), rng.pick([0, 8, 24, 32, 33, 56, 128, 129, 255, rng.int(256)]), rng.pick([0, 0, 0, rng.int(256)]), rng.bytes(rng.int(20)))
        : rng.bytes(rng.int(16));
    options.push(option(code, data, rng.chance(0.5) ? data.length : rng.pick([0, 1, 3, data.length + 1, data.length + 100, 65_535, rng.int(65_536)])));
  }
  const rdata = Buffer.concat(options);
  const rdlen = rng.chance(0.5) ? rdata.length : rng.pick([0, Math.max(0, rdata.length - 1), rdata.length + 1, 65_535, rng.int(65_536)]);
  return rawOpt({ udpSize: rng.pick([0, 511, 512, 1232, 4096, 65_535]), ext: rng.pick([0, 0, 1, 255]), version: rng.pick([0, 0, 0, 1, 255]), flags: rng.int(65_536), rdata, rdlen });
}

type Mutator = (rng: Rng, b: Buffer, seeds: readonly Seed[]) => Buffer;

/** Each takes a private copy and may change it in place or return a new buffer. */
const MUTATORS: readonly Mutator[] = [
  function bitFlips(rng, b) {
    for (let i = 1 + rng.int(8); i > 0 && b.length > 0; i--) {
      const at = rng.int(b.length);
      b[at] = (b[at] as number) ^ (1 << rng.int(8));
    }
    return b;
  },
  function overwrite(rng, b) {
    for (let i = 1 + rng.int(6); i > 0 && b.length > 0; i--) b[rng.int(b.length)] = rng.pick([0, 1, 0x2e /* . */, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xff, rng.int(256)]);
    return b;
  },
  function truncate(rng, b) {
    return b.subarray(0, rng.int(b.length + 1));
  },
  function extend(rng, b) {
    return Buffer.concat([b, rng.bytes(1 + rng.int(200))]);
  },
  function headerCounts(rng, b) {
    if (b.length < HEADER) return b;
    for (let i = 1 + rng.int(2); i > 0; i--) b.writeUInt16BE(rng.pick([0, 1, 2, 3, 255, 0x8000, 65_535, rng.int(65_536)]), 4 + 2 * rng.int(4));
    return b;
  },
  function headerFlags(rng, b) {
    if (b.length < 4) return b;
    const flags = b.readUInt16BE(2);
    b.writeUInt16BE(rng.pick([rng.int(65_536), flags ^ FLAG_QR, (flags & ~0x7800) | (rng.int(16) << 11), flags | 0x0070 | FLAG_TC, flags | rng.int(16)]), 2);
    return b;
  },
  function longLabel(rng, b) {
    const starts = labelStarts(b);
    if (starts.length > 0) b[rng.pick(starts)] = 64 + rng.int(192);
    return b;
  },
  function pointer(rng, b) {
    if (b.length < HEADER) return b;
    const q = questionBytes(b);
    const afterName = q === null ? b.length : HEADER + q.length - 4;
    const rest = b.subarray(afterName);
    switch (rng.int(5)) {
      case 0: // the question name is a pointer to itself
        return Buffer.concat([b.subarray(0, HEADER), Buffer.from([0xc0, HEADER]), rest]);
      case 1: // a label, then a pointer back to the name's own start
        return Buffer.concat([b.subarray(0, HEADER), Buffer.from([1, 0x61, 0xc0, HEADER]), rest]);
      case 2: {
        // an additional record whose owner points at itself
        const at = b.length;
        return appendRecords(b, 2, 1, Buffer.from([0xc0 | ((at >> 8) & 0x3f), at & 0xff, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]));
      }
      case 3: {
        // two records whose owners point at each other
        const first = b.length;
        const second = first + 12;
        const rec = (to: number): Buffer => Buffer.from([0xc0 | ((to >> 8) & 0x3f), to & 0xff, 0, 16, 0, 1, 0, 0, 0, 0, 0, 2, 1, 0x78]);
        return appendRecords(b, 2, 2, rec(second), rec(first));
      }
      default: {
        // a pointer anywhere, to anywhere
        const at = rng.int(b.length - 1);
        b[at] = 0xc0 | rng.int(64);
        b[at + 1] = rng.int(256);
        return b;
      }
    }
  },
  function appendBogusOpt(rng, b) {
    if (b.length < HEADER) return b;
    return rng.chance(0.8) ? appendRecords(b, 2, 1, bogusOpt(rng)) : appendRecords(b, 2, 2, bogusOpt(rng), bogusOpt(rng));
  },
  function splice(rng, b, seeds) {
    const other = rng.pick(seeds).bytes;
    return Buffer.concat([b.subarray(0, rng.int(b.length + 1)), other.subarray(rng.int(other.length + 1))]);
  },
];

/** A seed's existing OPT with its RDLENGTH or first option length made to lie. */
function lyingOptLengths(rng: Rng, b: Buffer, optAt: number): Buffer {
  const rdlenAt = optAt + 9;
  const optionLengthAt = optAt + 13;
  const at = optionLengthAt + 2 <= b.length && rng.chance(0.5) ? optionLengthAt : rdlenAt;
  const now = b.readUInt16BE(at);
  b.writeUInt16BE(rng.pick([0, 1, 3, 4, now + 1, Math.max(0, now - 1), now + 300, 65_535, rng.int(65_536)]) & 0xffff, at);
  return b;
}

function mutant(rng: Rng, seeds: readonly Seed[]): Buffer {
  const seed = rng.pick(seeds);
  let b: Buffer = Buffer.from(seed.bytes);
  if (seed.optAt !== null && rng.chance(0.3)) b = lyingOptLengths(rng, b, seed.optAt);
  for (let i = 1 + rng.int(3); i > 0; i--) b = Buffer.from(rng.pick(MUTATORS)(rng, b, seeds));
  return b;
}

/** Random bytes, half of them behind a header that passes the first checks (QR 0, opcode 0, one question). */
function randomMessage(rng: Rng, max = 600): Buffer {
  const b = rng.bytes(rng.int(max + 1));
  if (b.length >= HEADER && rng.chance(0.5)) {
    b[2] = (b[2] as number) & 0x07;
    b.writeUInt16BE(1, 4);
  }
  return b;
}

// ---------------------------------------------------------------- answers

/** Counts and problems of one transport. */
interface Tally {
  sent: number;
  answerable: number;
  answered: number;
  problems: string[];
}

function tally(): Tally {
  return { sent: 0, answerable: 0, answered: 0, problems: [] };
}

function hex(b: Buffer, max = 400): string {
  const h = b.toString('hex');
  return h.length > max ? `${h.slice(0, max)}...(${b.length} bytes)` : h;
}

/** Anything a query with at least a header and QR clear must be answered. */
function answerable(query: Buffer): boolean {
  return query.length >= HEADER && ((query[2] as number) & 0x80) === 0;
}

/** What is wrong with `answer` as the answer to `query`; null when nothing is. */
function answerProblem(query: Buffer, answer: Buffer, transport: 'udp' | 'tcp'): string | null {
  if (!answerable(query)) return 'answered a message that is a response or shorter than a header';
  let decoded: DecodedPacket;
  try {
    decoded = dnsPacket.decode(answer);
  } catch (err) {
    return `answer does not decode: ${(err as Error).message}`;
  }
  // dns-packet stops after the counted records; bytes left over mean the counts and the records disagree.
  const consumed = dnsPacket.decode.bytes;
  if (consumed !== answer.length) return `answer decodes to ${consumed} of its ${answer.length} bytes`;
  const qFlags = query.readUInt16BE(2);
  const aFlags = answer.readUInt16BE(2);
  if (decoded.id !== query.readUInt16BE(0)) return 'id differs from the query';
  if ((aFlags & FLAG_QR) === 0) return 'QR not set';
  if ((aFlags & 0x7800) !== (qFlags & 0x7800)) return 'opcode not echoed';
  if ((aFlags & FLAG_RD) !== (qFlags & FLAG_RD)) return 'RD not echoed';
  const rcode = aFlags & 0xf;
  if ((qFlags & 0x7800) !== 0 && rcode !== RCODE_NOTIMP) return `opcode ${(qFlags >> 11) & 0xf} answered with rcode ${rcode}, not NOTIMP`;
  const qdcount = answer.readUInt16BE(4);
  // The responder always copies the question into what it builds; only its last-resort catch sends SERVFAIL without one.
  if (rcode === RCODE_SERVFAIL && qdcount === 0) return 'SERVFAIL without a question: the responder threw';
  if (qdcount > 1) return `answer has ${qdcount} questions`;
  if (qdcount === 1) {
    const asked = questionBytes(query);
    const echoed = questionBytes(answer);
    if (asked === null || echoed === null || !asked.equals(echoed)) return 'question not copied byte for byte';
    const owner = (decoded.questions?.[0]?.name ?? '').toLowerCase();
    const stranger = (decoded.answers ?? []).find((r) => r.name.toLowerCase() !== owner);
    if (stranger !== undefined) return `answer record owned by ${JSON.stringify(stranger.name)}, not the question's ${JSON.stringify(owner)}`;
  }
  if (transport === 'udp' && answer.length > 512) {
    if (answer.length > 1232) return `UDP answer of ${answer.length} bytes, over 1232`;
    let size = 0;
    try {
      const optRecord = dnsPacket.decode(query).additionals?.find((r) => r.type === 'OPT') as OptAnswer | undefined;
      size = optRecord?.udpPayloadSize ?? 0;
    } catch {
      size = 0;
    }
    if (size < answer.length) return `UDP answer of ${answer.length} bytes to a query allowing ${Math.max(512, size)}`;
  }
  return null;
}

function record(tallied: Tally, query: Buffer, answer: Buffer, transport: 'udp' | 'tcp'): void {
  const problem = answerProblem(query, answer, transport);
  if (problem !== null && tallied.problems.length < 20) tallied.problems.push(`${transport} ${problem}\n  query  ${hex(query)}\n  answer ${hex(answer)}`);
}

/** The query with the test's id written over its first two bytes (when it has them). */
function withId(query: Buffer, id: number): Buffer {
  const copy = Buffer.from(query);
  if (copy.length >= 2) copy.writeUInt16BE(id & 0xffff, 0);
  return copy;
}

// ---------------------------------------------------------------- UDP

interface Sent {
  readonly query: Buffer;
  readonly window: number;
  answer: Buffer | null;
}

interface UdpPeer {
  readonly socket: UdpSocket;
  readonly sent: Map<number, Sent>;
  next: number;
}

/**
 * Several client sockets sending windows of datagrams. Ids are unique per
 * socket for the whole run, so every answer maps to exactly one query, even a
 * late one.
 */
class UdpFuzzer {
  readonly tally = tally();
  /** Answers whose id matched nothing sent, or a query answered twice. */
  strays = 0;
  #peers: UdpPeer[] = [];
  #window = 0;
  #waiting = 0;
  #wake: (() => void) | null = null;

  constructor(private readonly port: number) {}

  async open(): Promise<void> {
    for (let i = 0; i < UDP_PEERS; i++) {
      const socket = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
      const peer: UdpPeer = { socket, sent: new Map<number, Sent>(), next: 0 };
      socket.on('message', (msg) => this.#received(peer.sent, msg));
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
      this.#peers.push(peer);
    }
  }

  #received(sent: Map<number, Sent>, msg: Buffer): void {
    const entry = msg.length >= 2 ? sent.get(msg.readUInt16BE(0)) : undefined;
    if (entry === undefined || entry.answer !== null) {
      this.strays++;
      if (this.tally.problems.length < 20) this.tally.problems.push(`udp answer matching no unanswered query: ${hex(msg)}`);
      return;
    }
    entry.answer = msg;
    this.tally.answered++;
    record(this.tally, entry.query, msg, 'udp');
    if (entry.window === this.#window && answerable(entry.query) && --this.#waiting === 0) this.#wake?.();
  }

  /** Sends the packets round-robin over the sockets; resolves once all answerable ones are answered or the wait is over. */
  async window(packets: readonly Buffer[]): Promise<Sent[]> {
    const window = ++this.#window;
    const entries: Sent[] = [];
    this.#waiting = 0;
    packets.forEach((packet, i) => {
      const peer = this.#peers[i % this.#peers.length] as UdpPeer;
      if (peer.next > 0xffff) throw new Error('more than 65536 datagrams on one socket: ids would repeat');
      const query = withId(packet, peer.next);
      const entry: Sent = { query, window, answer: null };
      if (query.length >= 2) peer.sent.set(peer.next, entry);
      peer.next++;
      entries.push(entry);
      this.tally.sent++;
      if (answerable(query)) {
        this.tally.answerable++;
        this.#waiting++;
      }
      peer.socket.send(query, this.port, '127.0.0.1');
    });
    if (this.#waiting > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, UDP_WINDOW_WAIT_MS);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = null;
    }
    return entries;
  }

  /** Feeds every packet of `source` in windows. */
  async feed(source: Iterable<Buffer>): Promise<void> {
    let batch: Buffer[] = [];
    let bytes = 0;
    for (const packet of source) {
      batch.push(packet);
      bytes += packet.length + 1_024;
      if (batch.length === UDP_WINDOW || bytes >= UDP_WINDOW_BYTES) {
        await this.window(batch);
        batch = [];
        bytes = 0;
      }
    }
    if (batch.length > 0) await this.window(batch);
  }

  async close(): Promise<void> {
    await Promise.all(this.#peers.map((p) => new Promise<void>((resolve) => p.socket.close(() => resolve()))));
  }
}

// ---------------------------------------------------------------- TCP

function frame(message: Buffer): Buffer {
  return Buffer.concat([u16(message.length), message]);
}

/** Reads RFC 7766 frames off a socket as they complete. */
function onFrames(socket: Socket, each: (message: Buffer) => void): void {
  let buffered = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
      each(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
      buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
    }
  });
}

function opened(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

function closed(socket: Socket, what: string, timeoutMs: number): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${what}: not closed within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Writes `stream` in chunks cut at random points, yielding to the event loop now and then so the server sees partial frames. */
async function writeSplit(rng: Rng, socket: Socket, stream: Buffer): Promise<void> {
  for (let at = 0; at < stream.length; ) {
    const size = 1 + rng.pick([0, 1, 2, rng.int(16), rng.int(200), rng.int(2_000), rng.int(16_000)]);
    const ok = socket.write(stream.subarray(at, at + size));
    at += size;
    if (!ok) await new Promise((resolve) => socket.once('drain', resolve));
    else if (rng.chance(0.2)) await new Promise((resolve) => setImmediate(resolve));
  }
}

/** One connection carrying `messages` framed back to back; resolves when each answerable one is answered. */
async function tcpSession(port: number, rng: Rng, messages: readonly Buffer[], tallied: Tally): Promise<void> {
  const socket = await opened(port);
  const queries = messages.map((m, i) => withId(m, i));
  const unanswered = new Map<number, Buffer>();
  for (const [i, q] of queries.entries()) if (answerable(q)) unanswered.set(i, q);
  tallied.sent += queries.length;
  tallied.answerable += unanswered.size;
  let done: () => void = () => {};
  const all = new Promise<void>((resolve) => (done = resolve));
  onFrames(socket, (answer) => {
    const id = answer.length >= 2 ? answer.readUInt16BE(0) : -1;
    const query = unanswered.get(id);
    if (query === undefined) {
      if (tallied.problems.length < 20) tallied.problems.push(`tcp answer matching no unanswered query: ${hex(answer)}`);
      return;
    }
    unanswered.delete(id);
    tallied.answered++;
    record(tallied, query, answer, 'tcp');
    if (unanswered.size === 0) done();
  });
  if (unanswered.size === 0) done();
  await writeSplit(rng, socket, Buffer.concat(queries.map(frame)));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`tcp: ${unanswered.size} queries unanswered after 15 s, first ${hex([...unanswered.values()][0] ?? Buffer.alloc(0))}`)), 15_000);
  });
  await Promise.race([all, timeout]).finally(() => clearTimeout(timer));
  socket.end();
  await closed(socket, 'tcp session', 5_000);
}

type AbuseKind = 'overclaim-then-end' | 'half-prefix-then-end' | 'reset-mid-frame' | 'overclaim-then-reset' | 'largest-frame';

/**
 * One misbehaving connection. Complete frames sent before the trouble must
 * still be answered; when the client ends, the server must close too.
 */
async function tcpAbuse(port: number, rng: Rng, kind: AbuseKind, seeds: readonly Seed[], tallied: Tally): Promise<void> {
  const socket = await opened(port);
  socket.on('error', () => {});
  const good = [0, 1, 2].map((i) => withId(rng.pick(seeds).bytes, i));
  const expected = kind === 'largest-frame' ? 1 : kind.endsWith('then-end') ? good.length : 0;
  let answers = 0;
  const enough = new Promise<void>((resolve) => {
    if (expected === 0) resolve();
    onFrames(socket, () => {
      if (++answers === expected) resolve();
    });
  });
  tallied.sent += kind === 'largest-frame' ? 1 : good.length + 1;
  tallied.answerable += expected;
  const goodFrames = Buffer.concat(good.map(frame));
  switch (kind) {
    case 'overclaim-then-end': {
      const partial = mutant(rng, seeds);
      await writeSplit(rng, socket, Buffer.concat([goodFrames, u16(partial.length + 1 + rng.int(600)), partial]));
      socket.end();
      break;
    }
    case 'half-prefix-then-end':
      await writeSplit(rng, socket, Buffer.concat([goodFrames, Buffer.from([rng.int(256)])]));
      socket.end();
      break;
    case 'reset-mid-frame':
      socket.write(goodFrames.subarray(0, rng.int(goodFrames.length)));
      socket.resetAndDestroy();
      break;
    case 'overclaim-then-reset':
      socket.write(Buffer.concat([u16(65_535), rng.bytes(rng.int(1_000))]));
      await new Promise((resolve) => setImmediate(resolve));
      socket.resetAndDestroy();
      break;
    case 'largest-frame': {
      await writeSplit(rng, socket, frame(Buffer.concat([header(0, 1, 0, 0, 0), rng.bytes(65_535 - HEADER)])));
      break;
    }
  }
  await Promise.race([enough, closed(socket, `tcp ${kind}`, 5_000)]);
  tallied.answered += answers;
  if (answers < expected && tallied.problems.length < 20) tallied.problems.push(`tcp ${kind}: ${answers} of ${expected} complete frames answered`);
  if (!socket.destroyed && kind === 'largest-frame') socket.end();
  await closed(socket, `tcp ${kind}`, 5_000);
}

// ---------------------------------------------------------------- the test

/** One query over UDP (retried, as a stub resolver would) or TCP; the raw answer. */
async function exchange(port: number, transport: 'udp' | 'tcp', query: Buffer): Promise<Buffer> {
  if (transport === 'tcp') {
    const socket = await opened(port);
    const answer = new Promise<Buffer>((resolve) => onFrames(socket, resolve));
    socket.write(frame(query));
    const out = await Promise.race([answer, closed(socket, 'tcp query', 3_000).then(() => null)]);
    socket.destroy();
    if (out === null) throw new Error('tcp: connection closed before an answer');
    return out;
  }
  const socket = createSocket('udp4');
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      const answer = new Promise<Buffer | null>((resolve) => {
        const timer = setTimeout(() => resolve(null), 300);
        socket.once('message', (msg) => {
          clearTimeout(timer);
          resolve(msg);
        });
      });
      socket.send(query, port, '127.0.0.1');
      const out = await answer;
      if (out !== null) return out;
    }
    throw new Error('udp: no answer in 5 tries');
  } finally {
    socket.close();
  }
}

async function ask(port: number, transport: 'udp' | 'tcp', query: Buffer): Promise<DecodedPacket> {
  return dnsPacket.decode(await exchange(port, transport, query));
}

function aRecords(p: DecodedPacket): string[] {
  return (p.answers ?? []).flatMap((r) => (r.type === 'A' ? [r.data] : [])).sort();
}

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

/** The header rcode by name (dns-packet decodes it but its types leave it out). */
function rcodeOf(p: DecodedPacket): string {
  const code = (p.flags ?? 0) & 0xf;
  return RCODES[code] ?? `RCODE${code}`;
}

/** Whether a decoded answer is what `expect` says. */
function meets(p: DecodedPacket, expect: Expect): string | null {
  if (rcodeOf(p) !== expect.rcode) return `rcode ${rcodeOf(p)}, expected ${expect.rcode}`;
  if (expect.extendedRcode !== undefined) {
    const optRecord = p.additionals?.find((r) => r.type === 'OPT') as OptAnswer | undefined;
    if (optRecord?.extendedRcode !== expect.extendedRcode) return `OPT extended rcode ${optRecord?.extendedRcode}, expected ${expect.extendedRcode}`;
  }
  if (expect.a !== undefined && aRecords(p).join() !== [...expect.a].sort().join()) return `A records ${aRecords(p).join()}, expected ${expect.a.join()}`;
  return null;
}

interface DnsState {
  dns: { queries: number; tcpConnections: number };
}

function routes(upstream: string, extraHosts: readonly string[] = []): Record<string, unknown> {
  return {
    regions: {
      'eu-west': { location: { lat: 53.35, lon: -6.26 }, edge: { ipv4: WWW_V4, ipv6: WWW_V6 } },
      'us-east': { location: { lat: 38.9, lon: -77.04 }, edge: { ipv4: BIG_V4, ipv6: BIG_V6 } },
    },
    services: {
      web: { versions: { stable: { endpoints: { 'eu-west': [upstream] } } } },
      big: { versions: { stable: { endpoints: { 'us-east': [upstream] } } } },
    },
    routes: {
      web: { hosts: ['www.example.com', ...extraHosts], pathPrefix: '/', service: 'web' },
      big: { hosts: ['big.example.com'], pathPrefix: '/', service: 'big' },
    },
  };
}

async function startServer(t: Test, extraHosts: readonly string[] = []): Promise<{ m: TestMeridian; port: number }> {
  const up = await startUpstream('fuzz');
  const m = await startTestMeridian(routes(up.address, extraHosts), { dns: { listen: '127.0.0.1:0', zones: [{ name: ZONE, nameservers: ['ns1.example.com'] }] } });
  t.teardown(async () => {
    await m.close();
    await up.kill();
    await rm(m.dir, { recursive: true, force: true });
  });
  const port = m.dnsPort as number;
  const www = dnsPacket.encode({ type: 'query', id: 7, questions: [{ name: 'www.example.com', type: 'A' }] });
  await waitFor(async () => aRecords(await ask(port, 'udp', www)).length === WWW_V4.length, 'www.example.com answered over UDP');
  return { m, port };
}

t.test(`GeoDNS survives fuzzed UDP and TCP traffic (seed 0x${SEED.toString(16)})`, async (t) => {
  const uncaught: string[] = [];
  const watch = (err: unknown): void => {
    uncaught.push(err instanceof Error ? (err.stack ?? err.message) : String(err));
  };
  process.on('uncaughtException', watch);
  process.on('unhandledRejection', watch);
  t.teardown(() => {
    process.off('uncaughtException', watch);
    process.off('unhandledRejection', watch);
  });

  const { m, port } = await startServer(t);
  const rng = new Rng(SEED);
  const seeds = buildSeeds();
  const before = await getJson<DnsState>(m.adminPort, '/api/v1/state');
  const started = Date.now();

  // Every seed, over both transports, gets exactly the answer it should.
  for (const seed of seeds) {
    for (const transport of ['udp', 'tcp'] as const) {
      const problem = meets(await ask(port, transport, withId(seed.bytes, 0x4242)), seed.expect);
      if (problem !== null) t.fail(`seed "${seed.label}" over ${transport}: ${problem}`, { query: hex(seed.bytes) });
    }
  }
  t.pass(`${seeds.length} seeds answered as expected over UDP and TCP`);

  // UDP: each seed truncated at every length, then mutants, then random buffers.
  const udp = new UdpFuzzer(port);
  await udp.open();
  t.teardown(() => udp.close());
  const udpStarted = Date.now();
  const phases: [string, () => Iterable<Buffer>][] = [
    ['truncations', () => seeds.flatMap((seed) => Array.from({ length: seed.bytes.length }, (_, n) => seed.bytes.subarray(0, n)))],
    ['mutants', () => Array.from({ length: UDP_MUTANTS }, () => mutant(rng, seeds))],
    ['random', () => Array.from({ length: UDP_RANDOM }, () => randomMessage(rng))],
  ];
  for (const [phase, packets] of phases) {
    const phaseStarted = Date.now();
    const sentBefore = udp.tally.sent;
    await udp.feed(packets());
    t.comment(`udp ${phase}: ${udp.tally.sent - sentBefore} datagrams in ${Date.now() - phaseStarted} ms`);
  }
  const udpMs = Date.now() - udpStarted;
  const u = udp.tally;
  t.comment(`udp: ${u.sent} sent, ${u.answerable} answerable, ${u.answered} answered, ${udp.strays} strays, ${udpMs} ms`);
  t.same(uncaught, [], 'no uncaught exception during UDP fuzzing');
  t.same(u.problems, [], 'every UDP answer decodes, echoes id, QR, opcode, RD and question, and fits the size asked');
  t.ok(u.sent >= 75_000, `at least 75k datagrams sent (${u.sent})`);
  // The server answers every header-bearing query; only the kernel drops datagrams, and rarely on loopback.
  t.ok(u.answered >= u.answerable * 0.97, `at least 97% of answerable datagrams answered (${u.answered} of ${u.answerable})`);

  // TCP: long-lived connections with framed fuzz split at random points, including frames of 0..11 bytes.
  const tcp = tally();
  const tcpStarted = Date.now();
  const sessions = Array.from({ length: TCP_CONNECTIONS }, (_, c) => {
    const r = new Rng(SEED ^ (0x7c9 * (c + 1)));
    const messages = Array.from({ length: TCP_MESSAGES_PER_CONNECTION }, () => {
      const kind = r.int(20);
      if (kind < 2) return r.pick(seeds).bytes;
      if (kind < 4) return r.pick(seeds).bytes.subarray(0, r.int(HEADER));
      if (kind < 6) return randomMessage(r);
      return mutant(r, seeds);
    });
    return tcpSession(port, r, messages, tcp);
  });
  await Promise.all(sessions);
  const kinds: readonly AbuseKind[] = ['overclaim-then-end', 'half-prefix-then-end', 'reset-mid-frame', 'overclaim-then-reset', 'largest-frame'];
  for (const kind of kinds) {
    await Promise.all(Array.from({ length: TCP_ABUSERS_PER_KIND }, (_, i) => tcpAbuse(port, new Rng(SEED + i * 31 + kind.length), kind, seeds, tcp)));
  }
  const tcpMs = Date.now() - tcpStarted;
  t.comment(`tcp: ${tcp.sent} sent, ${tcp.answerable} answerable, ${tcp.answered} answered, ${tcpMs} ms`);
  t.same(uncaught, [], 'no uncaught exception during TCP fuzzing');
  t.same(tcp.problems, [], 'every TCP answer decodes and echoes its query; complete frames before a bad one are answered');
  t.ok(tcp.sent >= 23_000, `at least 23k TCP messages sent (${tcp.sent})`);
  t.equal(tcp.answered, tcp.answerable, 'every answerable TCP message answered');
  await waitFor(async () => (await getJson<DnsState>(m.adminPort, '/api/v1/state')).dns.tcpConnections === 0, 'the server to close every fuzzed connection');

  // Still up and still right, on both transports.
  t.equal((await send(m.adminPort, { path: '/healthz' })).status, 200, 'admin healthz still 200');
  const www = dnsPacket.encode({ type: 'query', id: 0xbeef, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: 'www.example.com', type: 'A' }] });
  for (const transport of ['udp', 'tcp'] as const) {
    const answer = await ask(port, transport, www);
    t.equal(answer.id, 0xbeef, `${transport}: id echoed`);
    t.equal(rcodeOf(answer), 'NOERROR', `${transport}: NOERROR after fuzzing`);
    t.same(aRecords(answer), [...WWW_V4].sort(), `${transport}: A records of www.example.com after fuzzing`);
  }

  const after = await getJson<DnsState>(m.adminPort, '/api/v1/state');
  const metrics = (await send(m.adminPort, { path: '/metrics' })).text;
  const series = [...metrics.matchAll(/^meridian_dns_queries_total\{([^}]*)\} (\d+)$/gm)].map((s) => ({ labels: s[1] as string, n: Number(s[2]) }));
  const formerr = (transport: string): number => series.filter((s) => s.labels.includes(`transport="${transport}"`) && s.labels.includes('rcode="FORMERR"')).reduce((a, s) => a + s.n, 0);
  const delta = after.dns.queries - before.dns.queries;
  t.comment(`dns.queries grew by ${delta}; FORMERR udp ${formerr('udp')}, tcp ${formerr('tcp')}; total ${Date.now() - started} ms`);
  t.ok(delta >= u.answered + tcp.answered, `dns.queries grew by at least the answers received (${delta} >= ${u.answered + tcp.answered})`);
  t.ok(delta <= u.sent + tcp.sent + 2 * seeds.length + 10, 'dns.queries grew by no more than the messages sent');
  t.ok(formerr('udp') > 1_000, 'meridian_dns_queries_total counts UDP FORMERR answers');
  t.ok(formerr('tcp') > 1_000, 'meridian_dns_queries_total counts TCP FORMERR answers');
  t.equal(
    series.reduce((a, s) => a + s.n, 0),
    after.dns.queries,
    'the metric series add up to the admin dns.queries total',
  );
  t.same(uncaught, [], 'no uncaught exception at all');
});

/**
 * Found by fuzzing. dns-packet decodes a name to a dotted string: a label
 * holding a '.' byte becomes a label boundary, and bytes that are not UTF-8
 * become U+FFFD (three bytes each). Such names are never routed: they are
 * outside every zone, so REFUSED.
 */
t.test('names dns-packet cannot round-trip', async (t) => {
  const { port } = await startServer(t, ['*.app.example.com']);
  const query = (name: Buffer): Buffer => Buffer.concat([header(FLAG_RD, 1, 0, 0, 0), name, u16(1), u16(1)]);
  const labels = (...parts: Buffer[]): Buffer => Buffer.concat([...parts.flatMap((p) => [Buffer.from([p.length]), p]), Buffer.from([0])]);
  const app = [Buffer.from('app'), Buffer.from('example'), Buffer.from('com')];

  t.test('one label "www.example.com" (outside every zone) is not answered as www.example.com', async (t) => {
    const answer = await ask(port, 'tcp', query(labels(Buffer.from('www.example.com'))));
    t.equal(rcodeOf(answer), 'REFUSED');
    t.same(answer.answers, []);
  });

  for (const [what, first] of [
    ['22 bytes 0xff (66 bytes once decoded)', Buffer.alloc(22, 0xff)],
    ['the single byte "."', Buffer.from('.')],
  ] as const) {
    t.test(`a wildcard answer for a label of ${what} is well-formed`, async (t) => {
      const q = query(labels(first, ...app));
      const raw = await exchange(port, 'tcp', q);
      t.equal(answerProblem(q, raw, 'tcp'), null, `query ${hex(q)} answer ${hex(raw)}`);
    });
  }
});
