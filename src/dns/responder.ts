import type { Answer, Question } from 'dns-packet';
import { parseIp } from '../net/ip.js';
import type { Logger } from '../observability/logger.js';
import type { Asker, Authority } from './authority.js';
import type { DnsMetrics, Transport } from './dns-metrics.js';
import { CLASSIC_UDP_ANSWER, MAX_UDP_ANSWER, subnetOption, type Edns } from './edns.js';
import { readQuery, type ReadQuery } from './query.js';
import type { Forwarder } from './forwarder.js';
import { AnswerCache, type Freshness } from './answer-cache.js';
import type { Origin } from '../geo/origin.js';
import { EDNS_DO, FLAG_AA, FLAG_CD, FLAG_QR, FLAG_RA, FLAG_RD, FLAG_TC, assemble, plainQuestionName } from './wire.js';
import { RCODE_BADVERS, RCODE_FORMERR, RCODE_NOTIMP, RCODE_REFUSED, RCODE_SERVFAIL } from './rcodes.js';

/** Longer queries are answered but not cached: real ones are far shorter, and keys must stay small. */
const MAX_CACHED_QUERY = 512;
/** Zone transfers are not offered. */
const TRANSFER_TYPES = new Set(['AXFR', 'IXFR']);

/** What one answered query was, for metrics. */
interface Outcome {
  readonly qtype: string;
  readonly rcode: number;
  readonly truncated: boolean;
}

/** A question as the responder works with it. */
interface Asked {
  readonly id: number;
  /** Header bits copied into the answer: RD and CD. */
  readonly echoFlags: number;
  readonly question: Buffer;
  /** The whole query message. */
  readonly wire: Buffer;
  readonly q: Question;
  readonly edns: Edns | null;
  readonly transport: Transport;
  /** Its answer-cache key; null when it is not cached. */
  readonly key: string | null;
}

/** How an authoritative answer may be reused: built under `built`, for `origin` when it depends on the asker. */
interface Reuse {
  readonly built: Freshness;
  readonly origin: Origin | null;
}

/** The OPT answering a malformed one (RFC 6891 7): version 0, no flags, no options. */
const MINIMAL_OPT = {
  name: '.',
  type: 'OPT',
  udpPayloadSize: MAX_UDP_ANSWER,
  extendedRcode: 0,
  ednsVersion: 0,
  flags: 0,
  flag_do: false,
  options: [],
} as unknown as Answer;

function optRecord(edns: Edns, extendedRcode: number, options: { code: number; data: Buffer }[]): Answer {
  // dns-packet types the options by name; a raw `data` buffer is what it writes for any code.
  return {
    name: '.',
    type: 'OPT',
    udpPayloadSize: MAX_UDP_ANSWER,
    extendedRcode,
    ednsVersion: 0,
    flags: edns.dnssecOk ? EDNS_DO : 0,
    flag_do: edns.dnssecOk,
    options: options as unknown as [],
  } as Answer;
}

/**
 * Turns one query message into its answer message, whatever the transport:
 * header checks, EDNS, the authority for the zones, forwarding or REFUSED for
 * other names, and truncation to the UDP size. Never throws; returns null for
 * messages that must not be answered (responses, runts without a header).
 */
export class Responder {
  readonly #authority: Authority;
  readonly #forwarder: Forwarder | null;
  readonly #metrics: DnsMetrics;
  readonly #logger: Logger;
  readonly #freshness: () => Freshness;
  readonly #cache = new AnswerCache();

  constructor(authority: Authority, forwarder: Forwarder | null, metrics: DnsMetrics, logger: Logger, freshness: () => Freshness) {
    this.#authority = authority;
    this.#forwarder = forwarder;
    this.#metrics = metrics;
    this.#logger = logger;
    this.#freshness = freshness;
  }

  /** Answers kept for repeated questions. */
  get cacheSize(): number {
    return this.#cache.size;
  }

  /** The answer to a query from `peer` (an IP address), or null when there is nothing to answer. */
  respond(query: Buffer, peer: string, transport: Transport): Buffer | null | Promise<Buffer | null> {
    const started = process.hrtime.bigint();
    if (query.length < 12) return null;
    const flags = query.readUInt16BE(2);
    if ((flags & FLAG_QR) !== 0) return null; // a response: answering it could start a loop
    const id = query.readUInt16BE(0);
    const key = query.length <= MAX_CACHED_QUERY ? AnswerCache.keyOf(query, transport) : null;
    const hit = key === null ? undefined : this.#cache.get(key, this.#freshness(), () => this.#authority.originOf(peer));
    if (hit !== undefined) {
      const out = Buffer.allocUnsafe(hit.bytes.length);
      hit.bytes.copy(out);
      out.writeUInt16BE(id, 0);
      return this.#done(started, transport, out, hit);
    }
    const echoFlags = flags & (FLAG_RD | FLAG_CD) | (flags & 0x7800); // RD, CD and the opcode
    const read = readQuery(query);
    const { question, q } = read;
    const opt = read.edns === 'malformed' ? MINIMAL_OPT : read.edns === null ? null : optRecord(read.edns, 0, read.edns.subnet === null ? [] : [subnetOption(read.edns.subnet, 0)]);
    // An opcode Meridian does not implement may give its sections and flag bits other meanings: NOTIMP whatever they hold, with RD and the opcode only.
    if ((flags & 0x7800) !== 0) return this.#refuse(started, id, flags & (FLAG_RD | 0x7800), transport, RCODE_NOTIMP, read, opt);
    if (read.problem !== null) return this.#refuse(started, id, echoFlags, transport, RCODE_FORMERR, read, opt);
    const edns = read.edns as Edns | null;
    const asked: Asked = { id, key, wire: query, echoFlags, question: question as Buffer, q: q as Question, edns, transport };
    if (edns !== null && edns.version > 0) return this.#finish(started, asked, RCODE_BADVERS, 0, { answers: [], authorities: [] }, 0);
    return this.#route(asked, peer, started);
  }

  #route(asked: Asked, peer: string, started: bigint): Buffer | Promise<Buffer | null> {
    const { q, edns } = asked;
    const name = q.name.toLowerCase();
    const plain = plainQuestionName(asked.wire);
    const zone = plain && (q.class === 'IN' || q.class === 'ANY') ? this.#authority.zoneOf(name) : null;
    const built = this.#freshness();
    if (zone !== null) {
      if (TRANSFER_TYPES.has(q.type)) return this.#finish(started, asked, RCODE_REFUSED, 0, { answers: [], authorities: [] }, 0, { built, origin: null });
      const subnet = edns?.subnet ?? null;
      const asker: Asker =
        subnet === null ? { ip: parseIp(peer), sourcePrefixLength: null } : { ip: subnet.sourcePrefixLength === 0 ? null : subnet.address, sourcePrefixLength: subnet.sourcePrefixLength };
      const a = this.#authority.answer(zone, q.name, name, q.type, asker);
      // With a client subnet the query bytes already say who asks.
      const reuse = a.cacheable ? { built, origin: subnet === null ? a.origin : null } : null;
      return this.#finish(started, asked, a.rcode, FLAG_AA, a, a.scope, reuse);
    }
    if (this.#forwarder === null || !plain || q.class !== 'IN') return this.#finish(started, asked, RCODE_REFUSED, 0, { answers: [], authorities: [] }, 0, { built, origin: null });
    return this.#forwarder
      .resolve(q, edns?.dnssecOk ?? false)
      .then((r) => this.#finish(started, asked, r.rcode, FLAG_RA, r, 0))
      .catch((err: Error) => {
        // Also an answer dns-packet decoded but cannot encode again: SERVFAIL, never a lost query.
        this.#logger.error({ err: err.message, name: q.name }, 'dns forwarding failed unexpectedly');
        return this.#finish(started, asked, RCODE_SERVFAIL, FLAG_RA, { answers: [], authorities: [] }, 0);
      });
  }

  /** Builds the answer message, truncating it to what a UDP client can take. */
  #finish(
    started: bigint,
    asked: Asked,
    rcode: number,
    flags: number,
    records: { answers: readonly Answer[]; authorities: readonly Answer[]; additionals?: readonly Answer[] },
    scope: number,
    reuse: Reuse | null = null,
  ): Buffer {
    const { edns } = asked;
    const additionals: Answer[] = [...(records.additionals ?? [])];
    if (edns !== null) additionals.push(optRecord(edns, rcode >> 4, edns.subnet === null ? [] : [subnetOption(edns.subnet, scope)]));
    const headerFlags = asked.echoFlags | flags | (rcode & 0xf);
    const qtype = asked.q.type;
    let out = assemble(asked.id, headerFlags, asked.question, { answers: records.answers, authorities: records.authorities, additionals });
    const limit = asked.transport === 'tcp' ? 65_535 : edns === null ? CLASSIC_UDP_ANSWER : Math.min(edns.udpSize, MAX_UDP_ANSWER);
    if (out.length > limit && additionals.length > (edns === null ? 0 : 1)) {
      // Extra data that does not fit is left out, without TC (RFC 2181 9); only the answer itself decides truncation.
      out = assemble(asked.id, headerFlags, asked.question, { answers: records.answers, authorities: records.authorities, additionals: additionals.filter((r) => r.type === 'OPT') });
    }
    const truncated = out.length > limit;
    if (truncated) {
      // TC with the question and the OPT only: the client retries over TCP.
      out = assemble(asked.id, headerFlags | FLAG_TC, asked.question, { answers: [], authorities: [], additionals: additionals.filter((r) => r.type === 'OPT') });
    }
    const outcome = { qtype, rcode, truncated };
    if (reuse !== null && asked.key !== null) this.#cache.set(asked.key, reuse.built, { bytes: out, ...outcome }, reuse.origin);
    return this.#done(started, asked.transport, out, outcome);
  }

  /** An error answer (FORMERR, NOTIMP) with the question and the OPT where they could be read. */
  #refuse(started: bigint, id: number, echoFlags: number, transport: Transport, rcode: number, read: ReadQuery, opt: Answer | null): Buffer {
    if (read.problem !== null) this.#logger.debug({ reason: read.problem }, 'dns query refused as malformed');
    const out = assemble(id, echoFlags | rcode, read.question, { answers: [], authorities: [], additionals: opt === null ? [] : [opt] });
    return this.#done(started, transport, out, { qtype: read.q?.type ?? 'NONE', rcode, truncated: false });
  }

  #done(started: bigint, transport: Transport, out: Buffer, outcome: Outcome): Buffer {
    this.#metrics.answered(transport, outcome.qtype, outcome.rcode, outcome.truncated, Number(process.hrtime.bigint() - started) / 1e9);
    return out;
  }
}

