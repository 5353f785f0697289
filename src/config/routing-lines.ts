import type { ObjectKind, RoutingDocument } from './routing-schema.js';
import { OBJECT_KINDS } from './routing-validate.js';
import { runSliced } from './slicing.js';

/**
 * A validated routing document as UTF-8 bytes: one line per object,
 * `kind<TAB>name<TAB>json`. It crosses from the parsing thread as one
 * transferred buffer (no copy, no structured clone of thousands of objects),
 * is decoded line by line spread over the event loop, and each object's JSON
 * bytes double as its fingerprint.
 */
export function encodeDocument(doc: RoutingDocument): Uint8Array {
  const lines: string[] = [];
  for (const kind of OBJECT_KINDS) {
    for (const [name, spec] of Object.entries(doc[kind])) lines.push(`${kind}\t${name}\t${JSON.stringify(spec)}`);
  }
  // TextEncoder gives the bytes a buffer of their own, which can be transferred.
  return new TextEncoder().encode(lines.join('\n'));
}

const NEWLINE = 0x0a;
const TAB = 0x09;

/**
 * Turns encoded documents back into objects, spread over the event loop. An
 * object whose JSON bytes are the same as in the previous document decoded
 * comes back as the very same object, so the compile can reuse what was built from it.
 */
export class DocumentDecoder {
  #previous = new Map<string, { readonly json: Buffer; readonly spec: unknown }>();

  /** Decodes one encoded document. */
  decode(encoded: Uint8Array): Promise<RoutingDocument> {
    return runSliced(this.#steps(Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength)));
  }

  *#steps(bytes: Buffer): Generator<void, RoutingDocument> {
    const doc: Record<ObjectKind, Record<string, unknown>> = { regions: {}, services: {}, routes: {} };
    const next = new Map<string, { readonly json: Buffer; readonly spec: unknown }>();
    for (let start = 0; start < bytes.length; ) {
      let end = bytes.indexOf(NEWLINE, start);
      if (end < 0) end = bytes.length;
      const tab1 = bytes.indexOf(TAB, start);
      const tab2 = bytes.indexOf(TAB, tab1 + 1);
      const kind = bytes.toString('latin1', start, tab1) as ObjectKind;
      const id = bytes.toString('utf8', start, tab2);
      const json = bytes.subarray(tab2 + 1, end);
      const old = this.#previous.get(id);
      const entry = old !== undefined && old.json.equals(json) ? old : { json, spec: JSON.parse(json.toString('utf8')) as unknown };
      next.set(id, entry);
      doc[kind][id.slice(tab1 - start + 1)] = entry.spec;
      start = end + 1;
      yield;
    }
    this.#previous = next;
    return doc as RoutingDocument;
  }
}
