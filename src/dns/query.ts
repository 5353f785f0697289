import dnsPacket, { type DecodedPacket, type Question } from 'dns-packet';
import { EdnsError, readEdns, type Edns } from './edns.js';
import { HEADER_BYTES, plausibleCounts, questionEnd } from './wire.js';

/** What could be read of a query message, malformed or not: error answers echo what parsed. */
export interface ReadQuery {
  /** Why the message is malformed (FORMERR), null when it is well formed. */
  readonly problem: string | null;
  /** The question's bytes as sent, when there was exactly one well-formed question. */
  readonly question: Buffer | null;
  readonly q: Question | null;
  /** The query's EDNS; null without an OPT or when the message did not decode; 'malformed' for a bad OPT. */
  readonly edns: Edns | null | 'malformed';
}

function bare(problem: string): ReadQuery {
  return { problem, question: null, q: null, edns: null };
}

/**
 * Decodes a query and checks its shape (RFC 1035, RFC 6891 6.1.1): one
 * question, one OPT owned by the root, nothing after the last record. Never
 * throws; what did parse is returned even when the message is malformed.
 */
export function readQuery(query: Buffer): ReadQuery {
  if (!plausibleCounts(query)) return bare('section counts do not fit the message');
  let message: DecodedPacket;
  try {
    message = dnsPacket.decode(query);
  } catch {
    return bare('undecodable message');
  }
  const trailing = dnsPacket.decode.bytes !== query.length;
  const questions = message.questions ?? [];
  const end = questions.length === 1 ? questionEnd(query) : -1;
  const question = end < 0 ? null : query.subarray(HEADER_BYTES, end);
  const q = end < 0 ? null : (questions[0] as Question);
  let edns: Edns | null;
  try {
    edns = readEdns((message.additionals ?? []) as { type: string; name: string }[]);
  } catch (err) {
    if (!(err instanceof EdnsError)) throw err;
    return { problem: err.message, question, q, edns: 'malformed' };
  }
  const problem = trailing ? 'bytes after the last record' : questions.length !== 1 ? `${questions.length} questions, not one` : end < 0 ? 'malformed question' : null;
  return { problem, question, q, edns };
}
