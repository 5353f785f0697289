import dnsPacket, { type Answer } from 'dns-packet';
import { compress } from './compress.js';

/** Header flag bits (RFC 1035 4.1.1). */
export const FLAG_QR = 0x8000;
export const FLAG_AA = 0x0400;
export const FLAG_TC = 0x0200;
export const FLAG_RD = 0x0100;
export const FLAG_RA = 0x0080;
export const FLAG_CD = 0x0010;
/** The DO bit of an OPT record's flags (RFC 3225). */
export const EDNS_DO = 0x8000;

export const HEADER_BYTES = 12;

/**
 * The end offset of the single question that starts after the header, or -1
 * when its name runs off the message or uses a compression pointer (which can
 * only point back into the header, so it is malformed).
 */
export function questionEnd(message: Buffer): number {
  let at = HEADER_BYTES;
  for (;;) {
    if (at >= message.length) return -1;
    const length = message[at] as number;
    if (length === 0) break;
    if (length > 63) return -1;
    at += 1 + length;
  }
  at += 1 + 4; // the root label, then type and class
  return at <= message.length ? at : -1;
}

/**
 * Whether the question name (starting after the header) has only bytes that
 * survive decoding and re-encoding unchanged: printable ASCII other than the dot.
 * dns-packet joins labels with dots without escaping and replaces bytes that are
 * not UTF-8, so any other name could be routed as a different one.
 */
export function plainQuestionName(message: Buffer): boolean {
  let at = HEADER_BYTES;
  for (let length = message[at] ?? 0; length !== 0; length = message[at] ?? 0) {
    for (let i = at + 1; i <= at + length; i++) {
      const c = message[i] as number;
      if (c <= 0x20 || c >= 0x7f || c === 0x2e) return false;
    }
    at += 1 + length;
  }
  return true;
}

/**
 * Whether the header's section counts fit the message: no more questions and
 * records than the bytes after the header could hold (5 and 11 bytes at least
 * each). Checked before decoding, which allocates per counted entry.
 */
export function plausibleCounts(message: Buffer): boolean {
  const records = message.readUInt16BE(6) + message.readUInt16BE(8) + message.readUInt16BE(10);
  return message.readUInt16BE(4) * 5 + records * 11 <= message.length - HEADER_BYTES;
}

/** The records of an answer, by section. */
export interface Sections {
  readonly answers: readonly Answer[];
  readonly authorities: readonly Answer[];
  readonly additionals: readonly Answer[];
}

const NO_RECORDS: Sections = { answers: [], authorities: [], additionals: [] };

/**
 * A response message: the header written here, the question copied byte for
 * byte from the query (so its case and type come back exactly as asked), the
 * records encoded by dns-packet, then names compressed (dns-packet does not).
 */
export function assemble(id: number, flags: number, question: Buffer | null, sections: Sections = NO_RECORDS): Buffer {
  const records =
    sections.answers.length + sections.authorities.length + sections.additionals.length === 0
      ? null
      : dnsPacket.encode({ answers: [...sections.answers], authorities: [...sections.authorities], additionals: [...sections.additionals] });
  const recordBytes = records === null ? 0 : records.length - HEADER_BYTES;
  const out = Buffer.allocUnsafe(HEADER_BYTES + (question?.length ?? 0) + recordBytes);
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(flags | FLAG_QR, 2);
  out.writeUInt16BE(question === null ? 0 : 1, 4);
  out.writeUInt16BE(sections.answers.length, 6);
  out.writeUInt16BE(sections.authorities.length, 8);
  out.writeUInt16BE(sections.additionals.length, 10);
  let at = HEADER_BYTES;
  if (question !== null) at += question.copy(out, at);
  if (records !== null) records.copy(out, at, HEADER_BYTES);
  return records === null ? out : compress(out);
}
