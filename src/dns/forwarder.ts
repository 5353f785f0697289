import { randomInt } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import dnsPacket, { type Answer, type DecodedPacket, type Question } from 'dns-packet';
import { LRUCache } from 'lru-cache';
import type { HostPort } from '../net/address.js';
import type { Logger } from '../observability/logger.js';
import type { DnsMetrics } from './dns-metrics.js';
import { queryOverTcp } from './tcp-query.js';
import { MAX_UDP_ANSWER } from './edns.js';
import { EDNS_DO, FLAG_RD, FLAG_TC } from './wire.js';
import { RCODE_NXDOMAIN, RCODE_SERVFAIL } from './rcodes.js';

/** What a forwarder said, ready to be copied into the client's answer. */
export interface ForwardedAnswer {
  readonly rcode: number;
  readonly answers: readonly Answer[];
  readonly authorities: readonly Answer[];
  readonly additionals: readonly Answer[];
}

/** How long one forwarder gets before the next is asked. */
const TRY_TIMEOUT_MS = 2_000;
/** Upper bound on how long any forwarded answer is cached. */
const MAX_CACHE_S = 3_600;
/** Cache time of a negative answer that carries no SOA (RFC 2308 suggests a few minutes at most). */
const NEGATIVE_DEFAULT_S = 60;

interface Cached {
  readonly answer: ForwardedAnswer;
  readonly storedAt: number;
}

interface Pending {
  readonly expect: HostPort;
  readonly question: Question;
  readonly settle: (packet: DecodedPacket | null) => void;
}

function ttlOf(records: readonly Answer[]): number {
  let min = MAX_CACHE_S;
  for (const r of records) if (r.type !== 'OPT' && 'ttl' in r && typeof r.ttl === 'number' && r.ttl < min) min = r.ttl;
  return min;
}

/** How long an answer may be cached (seconds); 0 for answers that must not be. */
function cacheSeconds(answer: ForwardedAnswer): number {
  if (answer.rcode !== 0 && answer.rcode !== RCODE_NXDOMAIN) return 0;
  if (answer.answers.length > 0) return ttlOf(answer.answers);
  const soa = answer.authorities.find((r) => r.type === 'SOA');
  if (soa === undefined || soa.type !== 'SOA') return NEGATIVE_DEFAULT_S;
  return Math.min(soa.ttl ?? 0, soa.data.minimum ?? 0, MAX_CACHE_S);
}

function aged(records: readonly Answer[], seconds: number): Answer[] {
  return records.map((r) => (r.type === 'OPT' || !('ttl' in r) ? r : { ...r, ttl: Math.max(0, (r.ttl ?? 0) - seconds) }) as Answer);
}

function sameQuestion(a: Question | undefined, b: Question): boolean {
  return a !== undefined && a.name.toLowerCase() === b.name.toLowerCase() && a.type === b.type && a.class === b.class;
}

/**
 * Forwards questions outside the zones to the configured resolvers, in order,
 * over UDP (TCP when the answer was truncated), and caches answers for their
 * TTL. Identical questions in flight share one upstream query. Answers are
 * accepted only from the address asked, with the same id and question.
 */
export class Forwarder {
  readonly #servers: readonly HostPort[];
  readonly #metrics: DnsMetrics;
  readonly #logger: Logger;
  readonly #cache = new LRUCache<string, Cached>({ max: 10_000, ttlAutopurge: false });
  readonly #inFlight = new Map<string, Promise<ForwardedAnswer>>();
  readonly #pending = new Map<number, Pending>();
  readonly #sockets = new Map<4 | 6, Socket>();

  constructor(servers: readonly HostPort[], metrics: DnsMetrics, logger: Logger) {
    this.#servers = servers;
    this.#metrics = metrics;
    this.#logger = logger;
  }

  /** The answer for a question: from the cache, from a query already in flight, or from the forwarders. */
  resolve(question: Question, dnssecOk: boolean): Promise<ForwardedAnswer> {
    const key = `${question.name.toLowerCase()}|${question.type}|${question.class}|${dnssecOk ? 1 : 0}`;
    const cached = this.#cache.get(key);
    if (cached !== undefined) {
      this.#metrics.forwarded('cached');
      const elapsed = Math.floor((Date.now() - cached.storedAt) / 1000);
      const a = cached.answer;
      return Promise.resolve({ rcode: a.rcode, answers: aged(a.answers, elapsed), authorities: aged(a.authorities, elapsed), additionals: aged(a.additionals, elapsed) });
    }
    let flight = this.#inFlight.get(key);
    if (flight === undefined) {
      flight = this.#ask(question, dnssecOk).finally(() => this.#inFlight.delete(key));
      this.#inFlight.set(key, flight);
      void flight.then((answer) => {
        const seconds = cacheSeconds(answer);
        if (seconds > 0) this.#cache.set(key, { answer, storedAt: Date.now() }, { ttl: seconds * 1000 });
      });
    }
    return flight;
  }

  /** Entries in the answer cache. */
  get cacheSize(): number {
    return this.#cache.size;
  }

  async #ask(question: Question, dnssecOk: boolean): Promise<ForwardedAnswer> {
    for (const server of this.#servers) {
      const id = this.#freeId();
      const query = dnsPacket.encode({
        id,
        type: 'query',
        flags: FLAG_RD,
        questions: [question],
        additionals: [{ name: '.', type: 'OPT', udpPayloadSize: MAX_UDP_ANSWER, extendedRcode: 0, ednsVersion: 0, flags: dnssecOk ? EDNS_DO : 0, flag_do: dnssecOk, options: [] }],
      });
      let packet = await this.#overUdp(server, id, question, query);
      if (packet !== null && (packet.flags ?? 0) & FLAG_TC) packet = await queryOverTcp(server, query, TRY_TIMEOUT_MS).catch(() => null);
      if (packet === null || packet.id !== id || !sameQuestion(packet.questions?.[0], question)) {
        this.#logger.warn({ forwarder: `${server.host}:${server.port}`, name: question.name }, 'dns forwarder did not answer');
        continue;
      }
      const rcode = ((packet.flags ?? 0) & 0xf) as number;
      if (rcode === RCODE_SERVFAIL) continue;
      this.#metrics.forwarded('answered');
      return {
        rcode,
        answers: packet.answers ?? [],
        authorities: packet.authorities ?? [],
        additionals: (packet.additionals ?? []).filter((r) => r.type !== 'OPT'),
      };
    }
    this.#metrics.forwarded('failed');
    return { rcode: RCODE_SERVFAIL, answers: [], authorities: [], additionals: [] };
  }

  #overUdp(server: HostPort, id: number, question: Question, query: Buffer): Promise<DecodedPacket | null> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle(null), TRY_TIMEOUT_MS).unref();
      const settle = (packet: DecodedPacket | null): void => {
        clearTimeout(timer);
        this.#pending.delete(id);
        resolve(packet);
      };
      this.#pending.set(id, { expect: server, question, settle });
      this.#socket(isIP(server.host) === 6 ? 6 : 4).send(query, server.port, server.host, (err) => {
        if (err !== null) settle(null);
      });
    });
  }

  #socket(family: 4 | 6): Socket {
    let socket = this.#sockets.get(family);
    if (socket === undefined) {
      socket = createSocket(family === 4 ? 'udp4' : 'udp6');
      socket.on('message', (message, from) => this.#received(message, from.address, from.port));
      socket.on('error', (err) => this.#logger.warn({ err: err.message }, 'dns forwarding socket error'));
      socket.unref();
      this.#sockets.set(family, socket);
    }
    return socket;
  }

  #received(message: Buffer, address: string, port: number): void {
    if (message.length < 12) return;
    const pending = this.#pending.get(message.readUInt16BE(0));
    if (pending === undefined || pending.expect.port !== port || !sameHost(pending.expect.host, address)) return;
    let packet: DecodedPacket;
    try {
      packet = dnsPacket.decode(message);
    } catch {
      return; // garbage with a matching id: keep waiting for the real answer
    }
    if (!sameQuestion(packet.questions?.[0], pending.question)) return;
    pending.settle(packet);
  }

  #freeId(): number {
    for (;;) {
      const id = randomInt(0, 65_536);
      if (!this.#pending.has(id)) return id;
    }
  }

  /** Closes the sockets; queries in flight end as timeouts. */
  close(): void {
    for (const socket of this.#sockets.values()) socket.close();
    this.#sockets.clear();
  }
}

function sameHost(configured: string, seen: string): boolean {
  return configured === seen || configured.toLowerCase() === seen.toLowerCase();
}
