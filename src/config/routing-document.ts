import type { ConfigIssue } from './issues.js';
import { checkReferences } from './routing-references.js';
import type { RoutingDocument } from './routing-schema.js';
import { validateRoutingObjects } from './routing-validate.js';

/** A whole routing document checked as one: objects, cross references, and that it is a table at all. */
export interface ValidatedDocument {
  /** The objects that validated on their own. */
  readonly doc: RoutingDocument;
  /** Every problem; a store applies the document only when there is none. */
  readonly issues: readonly ConfigIssue[];
  /** Names of the services and routes a table could hold (their references resolve). */
  readonly usable: { readonly services: ReadonlySet<string>; readonly routes: ReadonlySet<string> };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Problems that make a document no routing table at all: empty (an empty or
 * comment-only file, or one caught half written), or without a `routes`
 * section. Serving such a document would answer every request with 404.
 */
export function emptinessIssues(raw: unknown): ConfigIssue[] {
  if (raw === null || raw === undefined || (isRecord(raw) && Object.keys(raw).length === 0)) {
    return [{ path: '', message: 'the routing table is empty (an empty file, or one still being written?)', reason: 'empty' }];
  }
  if (isRecord(raw) && !Object.hasOwn(raw, 'routes')) {
    return [{ path: 'routes', message: 'missing: a routing table needs a routes section (write "routes: {}" to serve nothing on purpose)', reason: 'empty' }];
  }
  return [];
}

/**
 * Validates a routing document as one transaction: every object against its
 * schema, then the references between them, then that it is a table at all.
 * Every problem is reported at once.
 */
export function validateRoutingDocument(raw: unknown): ValidatedDocument {
  const empty = emptinessIssues(raw);
  const { doc, issues, rejected } = validateRoutingObjects(raw);
  const references = checkReferences(doc, rejected);
  return { doc, issues: [...empty, ...issues, ...references.issues], usable: { services: references.services, routes: references.routes } };
}
