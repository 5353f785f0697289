/**
 * Single DNS queries with dns-packet, over UDP or TCP, decoded into what a
 * reader checks: rcode, AA, answers, authority, the ECS scope. Used to wait
 * until a server answers and to show what each candidate answers before load.
 */
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import dnsPacket, { type Answer, type Packet } from 'dns-packet';
import type { Subnet } from './zone.js';

/** One query to send. */
export interface ProbeQuery {
  readonly name: string;
  readonly type: 'A' | 'AAAA' | 'SOA' | 'NS' | 'MX';
  readonly ecs?: Subnet;
  readonly tcp?: boolean;
}

/** A decoded answer, or `rcode: 'timeout'` / `'error'` with `error` set. */
export interface ProbeAnswer {
  readonly rcode: string;
  readonly aa: boolean;
  readonly tc: boolean;
  /** `TYPE data ttl`, e.g. `A 203.0.113.10 30`. */
  readonly answers: readonly string[];
  readonly authority: readonly string[];
  /** The scope prefix of the ECS option in the response; null when the response has none. */
  readonly ecsScope: number | null;
  readonly bytes: number;
  readonly error?: string;
}

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

/** The rcode name of a DNS message's header (low 4 bits of byte 3). */
export function rcodeName(code: number): string {
  return RCODES[code] ?? `RCODE${code}`;
}

/** An OPT record carrying one EDNS Client Subnet option (RFC 7871, code 8) for an IPv4 subnet. */
export function ednsClientSubnet(subnet: Subnet): Answer {
  return {
    type: 'OPT',
    name: '.',
    udpPayloadSize: 1232,
    extendedRcode: 0,
    ednsVersion: 0,
    flags: 0,
    flag_do: false,
    options: [{ code: 8, family: 1, sourcePrefixLength: subnet.prefixLength, scopePrefixLength: 0, ip: subnet.ip }],
  };
}

function encodeQuery(q: ProbeQuery, id: number): Buffer {
  const packet: Packet = { type: 'query', id, flags: 0, questions: [{ name: q.name, type: q.type, class: 'IN' }] };
  if (q.ecs !== undefined) packet.additionals = [ednsClientSubnet(q.ecs)];
  return dnsPacket.encode(packet);
}

function recordText(r: Answer): string {
  const ttl = 'ttl' in r && typeof r.ttl === 'number' ? ` ${r.ttl}` : '';
  switch (r.type) {
    case 'A':
    case 'AAAA':
    case 'NS':
    case 'CNAME':
      return `${r.type} ${r.data}${ttl}`;
    case 'SOA':
      return `SOA ${r.data.mname} ${r.data.rname} ${r.data.serial}${ttl}`;
    default:
      return `${r.type}${ttl}`;
  }
}

function decodeAnswer(buf: Buffer): ProbeAnswer {
  const rcode = rcodeName((buf[3] ?? 0) & 0x0f);
  const packet = dnsPacket.decode(buf);
  let ecsScope: number | null = null;
  for (const extra of packet.additionals ?? []) {
    if (extra.type !== 'OPT') continue;
    for (const option of extra.options) if (option.code === 8 && 'scopePrefixLength' in option) ecsScope = option.scopePrefixLength ?? 0;
  }
  return {
    rcode,
    aa: packet.flag_aa,
    tc: packet.flag_tc,
    answers: (packet.answers ?? []).map(recordText),
    authority: (packet.authorities ?? []).map(recordText),
    ecsScope,
    bytes: buf.length,
  };
}

function failed(rcode: 'timeout' | 'error', error: string): ProbeAnswer {
  return { rcode, aa: false, tc: false, answers: [], authority: [], ecsScope: null, bytes: 0, error };
}

function queryUdp(port: number, q: ProbeQuery, timeoutMs: number): Promise<ProbeAnswer> {
  const id = Math.floor(Math.random() * 0x10000);
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    const done = (answer: ProbeAnswer): void => {
      clearTimeout(timer);
      socket.close();
      resolve(answer);
    };
    const timer = setTimeout(() => done(failed('timeout', `no answer within ${timeoutMs}ms`)), timeoutMs);
    socket.on('error', (err) => done(failed('error', err.message)));
    socket.on('message', (msg) => {
      if (msg.length < 12 || msg.readUInt16BE(0) !== id) return;
      try {
        done(decodeAnswer(msg));
      } catch (err) {
        done(failed('error', `undecodable answer: ${(err as Error).message}`));
      }
    });
    socket.send(encodeQuery(q, id), port, '127.0.0.1');
  });
}

function queryTcp(port: number, q: ProbeQuery, timeoutMs: number): Promise<ProbeAnswer> {
  const id = Math.floor(Math.random() * 0x10000);
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = Buffer.alloc(0);
    const done = (answer: ProbeAnswer): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(failed('timeout', `no answer within ${timeoutMs}ms`)), timeoutMs);
    socket.on('error', (err) => done(failed('error', err.message)));
    socket.on('connect', () => {
      const message = encodeQuery(q, id);
      const length = Buffer.alloc(2);
      length.writeUInt16BE(message.length);
      socket.write(Buffer.concat([length, message]));
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 2 || received.length < 2 + received.readUInt16BE(0)) return;
      try {
        done(decodeAnswer(received.subarray(2, 2 + received.readUInt16BE(0))));
      } catch (err) {
        done(failed('error', `undecodable answer: ${(err as Error).message}`));
      }
    });
    socket.on('end', () => done(failed('error', 'connection closed before a whole answer')));
  });
}

/** Sends one query to 127.0.0.1:port and decodes the answer; never throws. */
export function probe(port: number, q: ProbeQuery, timeoutMs = 1_000): Promise<ProbeAnswer> {
  return q.tcp === true ? queryTcp(port, q, timeoutMs) : queryUdp(port, q, timeoutMs);
}

/**
 * Probes until `accept` holds for an answer; returns that answer. Throws when
 * `alive()` turns false or `timeoutMs` passes, with the last answer seen.
 */
export async function waitForAnswer(
  port: number,
  q: ProbeQuery,
  accept: (a: ProbeAnswer) => boolean,
  alive: () => string | null,
  timeoutMs: number,
): Promise<ProbeAnswer> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const dead = alive();
    if (dead !== null) throw new Error(dead);
    const answer = await probe(port, q, 500);
    if (accept(answer)) return answer;
    if (performance.now() >= deadline) {
      throw new Error(`no acceptable answer to ${q.name} ${q.type} within ${timeoutMs}ms; last: ${formatAnswer(answer)}`);
    }
    await sleep(100);
  }
}

/** One line: `NOERROR aa [A 203.0.113.10 30] auth [SOA ...] ecs-scope 24 (60 B)`. */
export function formatAnswer(a: ProbeAnswer): string {
  if (a.error !== undefined) return `${a.rcode}: ${a.error}`;
  const parts = [a.rcode, a.aa ? 'aa' : 'no-aa'];
  if (a.tc) parts.push('tc');
  parts.push(`[${a.answers.join(', ')}]`);
  if (a.authority.length > 0) parts.push(`auth [${a.authority.join(', ')}]`);
  if (a.ecsScope !== null) parts.push(`ecs-scope ${a.ecsScope}`);
  parts.push(`(${a.bytes} B)`);
  return parts.join(' ');
}
