/**
 * What each candidate answers before any load: the queries of the mix and the
 * cases around them (ECS per region, NXDOMAIN, NODATA, apex, TCP, a name
 * outside the zone), checked against what DESIGN.md promises of Meridian's
 * GeoDNS. gdnsd serves static data, so its answers are shown, not judged.
 */
import { formatAnswer, probe, type ProbeAnswer, type ProbeQuery } from './probe.js';
import { MISSING_NAME, NAMESERVER, REGIONS, ROUTE_HOSTS, TTL_SECONDS, ZONE, formatSubnet, type BenchRegion } from './zone.js';

/** One query of the check and what Meridian should answer; `expect` returns a problem, or null. */
interface AnswerCheck {
  readonly label: string;
  readonly query: ProbeQuery;
  readonly expect: (a: ProbeAnswer) => string | null;
}

/** The result of one check on one server. */
export interface CheckedAnswer {
  readonly label: string;
  readonly answer: ProbeAnswer;
  /** What is wrong with it, or null; always null where the server is not judged. */
  readonly problem: string | null;
}

const [API, WWW] = ROUTE_HOSTS;
const EU = REGIONS[0] as BenchRegion;
const US = REGIONS[1] as BenchRegion;
const ALL_V4 = REGIONS.map((r) => r.ipv4);
const ALL_V6 = REGIONS.map((r) => r.ipv6);
/** A client subnet outside every `geo.networks` entry (TEST-NET-1). */
const UNMAPPED = { ip: '192.0.2.0', prefixLength: 24 } as const;

function records(a: ProbeAnswer, type: string): string[] {
  return a.answers.filter((r) => r.startsWith(`${type} `)).map((r) => r.split(' ')[1] ?? '');
}

/** Problems common to every answer from an authoritative server. */
function basics(a: ProbeAnswer, rcode: string): string | null {
  if (a.error !== undefined) return `${a.rcode}: ${a.error}`;
  if (a.rcode !== rcode) return `rcode ${a.rcode}, expected ${rcode}`;
  if (!a.aa && rcode !== 'REFUSED') return 'AA flag not set';
  return null;
}

function addressAnswer(type: 'A' | 'AAAA', allowed: readonly string[]): (a: ProbeAnswer) => string | null {
  return (a) => {
    const basic = basics(a, 'NOERROR');
    if (basic !== null) return basic;
    const got = records(a, type);
    if (got.length === 0) return `no ${type} record`;
    const foreign = got.filter((ip) => !allowed.includes(ip));
    if (foreign.length > 0) return `${foreign.join(', ')} not among ${allowed.join(', ')}`;
    const ttls = a.answers.filter((r) => r.startsWith(`${type} `)).map((r) => Number(r.split(' ')[2]));
    if (ttls.some((t) => t !== TTL_SECONDS)) return `TTL ${ttls.join(', ')}, expected ${TTL_SECONDS}`;
    return null;
  };
}

function ecsAnswer(region: BenchRegion): (a: ProbeAnswer) => string | null {
  const address = addressAnswer('A', [region.ipv4]);
  return (a) => address(a) ?? (a.ecsScope === null ? 'no ECS option in the answer (RFC 7871 wants it echoed)' : null);
}

function negative(rcode: 'NXDOMAIN' | 'NOERROR'): (a: ProbeAnswer) => string | null {
  return (a) => {
    const basic = basics(a, rcode);
    if (basic !== null) return basic;
    if (a.answers.length > 0) return `answers ${a.answers.join(', ')}, expected none`;
    if (!a.authority.some((r) => r.startsWith('SOA '))) return 'no SOA in the authority section (negative caching needs it)';
    return null;
  };
}

/** The checks, in the order shown. */
const CHECKS: readonly AnswerCheck[] = [
  { label: `${API} A`, query: { name: API, type: 'A' }, expect: addressAnswer('A', ALL_V4) },
  { label: `${WWW} AAAA`, query: { name: WWW, type: 'AAAA' }, expect: addressAnswer('AAAA', ALL_V6) },
  { label: `${MISSING_NAME} A`, query: { name: MISSING_NAME, type: 'A' }, expect: negative('NXDOMAIN') },
  { label: `${API} A ecs ${formatSubnet(EU.clientSubnet)}`, query: { name: API, type: 'A', ecs: EU.clientSubnet }, expect: ecsAnswer(EU) },
  { label: `${API} A ecs ${formatSubnet(US.clientSubnet)}`, query: { name: API, type: 'A', ecs: US.clientSubnet }, expect: ecsAnswer(US) },
  {
    label: `${API} A ecs ${formatSubnet(UNMAPPED)} (no network)`,
    query: { name: API, type: 'A', ecs: UNMAPPED },
    expect: (a) => addressAnswer('A', ALL_V4)(a) ?? (a.ecsScope === null ? 'no ECS option in the answer (RFC 7871 wants it echoed)' : null),
  },
  { label: `${WWW} A`, query: { name: WWW, type: 'A' }, expect: addressAnswer('A', ALL_V4) },
  { label: `${API} A over TCP`, query: { name: API, type: 'A', tcp: true }, expect: addressAnswer('A', ALL_V4) },
  { label: `${API} MX (NODATA)`, query: { name: API, type: 'MX' }, expect: negative('NOERROR') },
  {
    label: `${ZONE} SOA`,
    query: { name: ZONE, type: 'SOA' },
    expect: (a) => basics(a, 'NOERROR') ?? (a.answers.some((r) => r.startsWith('SOA ')) ? null : 'no SOA record'),
  },
  {
    label: `${ZONE} NS`,
    query: { name: ZONE, type: 'NS' },
    expect: (a) => basics(a, 'NOERROR') ?? (records(a, 'NS').includes(NAMESERVER) ? null : `no NS ${NAMESERVER}`),
  },
  { label: 'example.org A (outside the zones)', query: { name: 'example.org', type: 'A' }, expect: (a) => basics(a, 'REFUSED') },
];

/** Sends every check query once to 127.0.0.1:port; judges the answers when `judge` is set. */
export async function checkAnswers(port: number, judge: boolean): Promise<CheckedAnswer[]> {
  const out: CheckedAnswer[] = [];
  for (const check of CHECKS) {
    const answer = await probe(port, check.query);
    out.push({ label: check.label, answer, problem: judge ? check.expect(answer) : null });
  }
  return out;
}

/** The checks as stderr lines: one per query and server, a problem marked `!!`. */
export function formatChecks(byServer: ReadonlyMap<string, readonly CheckedAnswer[]>): string {
  const lines: string[] = [];
  const width = Math.max(0, ...[...byServer.keys()].map((name) => name.length));
  for (const [i, check] of CHECKS.entries()) {
    lines.push(`  ${check.label}`);
    for (const [server, answers] of byServer) {
      const c = answers[i];
      if (c === undefined) continue;
      lines.push(`    ${server.padEnd(width)} ${formatAnswer(c.answer)}${c.problem === null ? '' : `  !! ${c.problem}`}`);
    }
  }
  return lines.join('\n');
}
