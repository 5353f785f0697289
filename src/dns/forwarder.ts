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

/** The answer when no forwarder gave one. */
const SERVFAIL: ForwardedAnswer = { rcode: RCODE_SERVFAIL, answers: [], authorities: [], additionals: [] };

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
 * TTL. Identical questions in flight share one upstream query. Each UDP query
 * goes out from a fresh socket on a port the kernel picks at random, with a
 * random id (RFC 5452); answers are accepted only from the address and port
 * asked, with the same id and question, and anything else is dropped and counted.
 */
export class Forwarder {
  readonly #servers: readonly HostPort[];
  readonly #metrics: DnsMetrics;
  readonly #logger: Logger;
  readonly #cache = new LRUCache<string, Cached>({ max: 10_000, ttlAutopurge: false });
  readonly #inFlight = new Map<string, Promise<ForwardedAnswer>>();
  /** Sockets of the UDP queries in flight, with what ends each. */
  readonly #open = new Map<Socket, (packet: DecodedPacket | null) => void>();

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
      flight = this.#ask(question, dnssecOk)
        .catch((err: Error) => {
          // A bug must cost this question, never the process: it fails like a silent forwarder.
          this.#logger.error({ err: err.message, stack: err.stack, name: question.name }, 'dns forwarding failed unexpectedly');
          this.#metrics.forwarded('failed');
          return SERVFAIL;
        })
        .finally(() => this.#inFlight.delete(key));
      this.#inFlight.set(key, flight);
      void flight
        .then((answer) => {
          const seconds = cacheSeconds(answer);
          if (seconds > 0) this.#cache.set(key, { answer, storedAt: Date.now() }, { ttl: seconds * 1000 });
        })
        .catch((err: Error) => this.#logger.warn({ err: err.message, name: question.name }, 'dns forwarded answer not cached'));
    }
    return flight;
  }

  /** Entries in the answer cache. */
  get cacheSize(): number {
    return this.#cache.size;
  }

  async #ask(question: Question, dnssecOk: boolean): Promise<ForwardedAnswer> {
    for (const server of this.#servers) {
      const id = randomInt(0, 65_536);
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
    return SERVFAIL;
  }

  #overUdp(server: HostPort, id: number, question: Question, query: Buffer): Promise<DecodedPacket | null> {
    return new Promise((resolve) => {
      const socket = createSocket(isIP(server.host) === 6 ? 'udp6' : 'udp4');
      const settle = (packet: DecodedPacket | null): void => {
        if (!this.#open.delete(socket)) return;
        clearTimeout(timer);
        socket.close();
        resolve(packet);
      };
      const timer = setTimeout(() => settle(null), TRY_TIMEOUT_MS).unref();
      this.#open.set(socket, settle);
      socket.on('message', (message, from) => {
        const packet = this.#accept(message, from.address, from.port, server, id, question);
        if (packet !== null) settle(packet);
      });
      socket.on('error', (err) => {
        this.#logger.warn({ err: err.message, forwarder: `${server.host}:${server.port}` }, 'dns forwarding socket error');
        settle(null);
      });
      socket.unref();
      // Unbound, the socket binds on this first send to a port the kernel picks at random.
      try {
        socket.send(query, server.port, server.host, (err) => {
          if (err !== null) settle(null);
        });
      } catch (err) {
        this.#logger.warn({ err: (err as Error).message, forwarder: `${server.host}:${server.port}` }, 'dns forwarding send failed');
        settle(null);
      }
    });
  }

  /** The decoded answer when `message` answers this query; null (dropped, counted) for anything else. */
  #accept(message: Buffer, address: string, port: number, server: HostPort, id: number, question: Question): DecodedPacket | null {
    let packet: DecodedPacket | null = null;
    if (message.length >= 12 && message.readUInt16BE(0) === id && port === server.port && sameHost(server.host, address)) {
      try {
        packet = dnsPacket.decode(message);
      } catch {
        packet = null;
      }
    }
    // Garbage, another port or another question: keep waiting for the real answer.
    if (packet === null || !sameQuestion(packet.questions?.[0], question)) {
      this.#metrics.forwardDropped();
      return null;
    }
    return packet;
  }

  /** Closes the sockets; queries in flight end as timeouts. */
  close(): void {
    for (const settle of [...this.#open.values()]) settle(null);
  }
}

function sameHost(configured: string, seen: string): boolean {
  return configured === seen || configured.toLowerCase() === seen.toLowerCase();
}
