import { performance } from 'node:perf_hooks';
import type { ObjectKind, RoutingDocument } from './routing-schema.js';
import { OBJECT_KINDS } from './routing-validate.js';

/**
 * A validated routing document as text: one line per object,
 * `kind<TAB>name<TAB>json`. It crosses from the parsing thread as one string
 * (a copy, not a structured clone of thousands of objects), and each object's
 * JSON doubles as its fingerprint.
 */
export function encodeDocument(doc: RoutingDocument): string {
  const lines: string[] = [];
  for (const kind of OBJECT_KINDS) {
    for (const [name, spec] of Object.entries(doc[kind])) lines.push(`${kind}\t${name}\t${JSON.stringify(spec)}`);
  }
  return lines.join('\n');
}

/** How long decoding runs before it gives way to the event loop. */
const SLICE_MS = 5;

/**
 * Turns encoded documents back into objects, spread over the event loop. An
 * object whose JSON is the same as in the previous document decoded comes
 * back as the very same object, so the compile can reuse what was built from it.
 */
export class DocumentDecoder {
  #previous = new Map<string, { readonly json: string; readonly spec: unknown }>();

  /** Decodes one encoded document. */
  async decode(encoded: string): Promise<RoutingDocument> {
    const doc: Record<ObjectKind, Record<string, unknown>> = { regions: {}, services: {}, routes: {} };
    const next = new Map<string, { readonly json: string; readonly spec: unknown }>();
    let sliceStart = performance.now();
    for (const line of encoded === '' ? [] : encoded.split('\n')) {
      const tab1 = line.indexOf('\t');
      const tab2 = line.indexOf('\t', tab1 + 1);
      const kind = line.slice(0, tab1) as ObjectKind;
      const name = line.slice(tab1 + 1, tab2);
      const json = line.slice(tab2 + 1);
      const id = line.slice(0, tab2);
      const old = this.#previous.get(id);
      const entry = old !== undefined && old.json === json ? old : { json, spec: JSON.parse(json) as unknown };
      next.set(id, entry);
      doc[kind][name] = entry.spec;
      if (performance.now() - sliceStart >= SLICE_MS) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        sliceStart = performance.now();
      }
    }
    this.#previous = next;
    return doc as RoutingDocument;
  }
}
