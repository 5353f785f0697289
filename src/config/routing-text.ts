import { parseConfigText } from './document.js';
import { ConfigError, type ConfigIssue } from './issues.js';
import { validateRoutingDocument } from './routing-document.js';
import { encodeDocument } from './routing-lines.js';

/** What parsing a routing file gives: the encoded document and its JSON (UTF-8 bytes, transferable), or every problem. */
export type ParsedRouting =
  | { readonly ok: true; readonly encoded: Uint8Array; readonly rawJson: Uint8Array }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

/**
 * Parses and validates a routing file's text as one transaction. Never
 * throws: whatever the text holds, the answer is a document or its problems.
 */
export function parseRoutingText(text: string, fileName: string): ParsedRouting {
  try {
    const raw = parseConfigText(text, fileName);
    const { doc, issues } = validateRoutingDocument(raw);
    if (issues.length > 0) return { ok: false, issues };
    return { ok: true, encoded: encodeDocument(doc), rawJson: new TextEncoder().encode(JSON.stringify(raw)) };
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, issues: err.issues };
    return { ok: false, issues: [{ path: fileName, message: `cannot be parsed: ${(err as Error).message}`, reason: 'syntax' }] };
  }
}
