import type { z } from 'zod';
import { fromZodIssues, joinPath, type ConfigIssue } from './issues.js';
import { objectName } from './primitives.js';
import {
  regionSchema,
  routeSchema,
  serviceSchema,
  type ObjectKind,
  type RegionSpec,
  type RouteSpec,
  type RoutingDocument,
  type ServiceSpec,
} from './routing-schema.js';

const SCHEMAS: { readonly [K in ObjectKind]: z.ZodType } = {
  regions: regionSchema,
  services: serviceSchema,
  routes: routeSchema,
};

/** The kinds of object, in the order they are validated and listed. */
export const OBJECT_KINDS: readonly ObjectKind[] = ['regions', 'services', 'routes'];

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Validates one object (a region, service or route) on its own; returns it parsed or its issues. */
export function validateObject(
  kind: ObjectKind,
  name: string,
  value: unknown,
): { ok: true; value: RegionSpec | ServiceSpec | RouteSpec } | { ok: false; issues: ConfigIssue[] } {
  const base = `${kind}.${name}`;
  const nameCheck = objectName.safeParse(name);
  if (!nameCheck.success) return { ok: false, issues: [{ path: base, message: `invalid name: ${nameCheck.error.issues[0]?.message ?? ''}` }] };
  const result = SCHEMAS[kind].safeParse(value);
  if (!result.success) return { ok: false, issues: fromZodIssues(result.error.issues, base) };
  const extra = kind === 'routes' ? routeIssues(result.data as RouteSpec, base) : [];
  if (extra.length > 0) return { ok: false, issues: extra };
  return { ok: true, value: result.data as RegionSpec | ServiceSpec | RouteSpec };
}

function routeIssues(route: RouteSpec, base: string): ConfigIssue[] {
  if (/[?#]/.test(route.pathPrefix)) return [{ path: `${base}.pathPrefix`, message: 'a path prefix cannot contain "?" or "#"' }];
  return [];
}

/**
 * Validates a routing document object by object, so that every problem is
 * reported and valid objects survive beside invalid ones. Returns the valid
 * objects, the issues of the rest, and the rest's `kind.name` keys.
 */
export function validateRoutingObjects(raw: unknown): { doc: RoutingDocument; issues: ConfigIssue[]; rejected: Set<string> } {
  const doc: RoutingDocument = { regions: {}, services: {}, routes: {} };
  const issues: ConfigIssue[] = [];
  const rejected = new Set<string>();
  if (raw === null || raw === undefined) return { doc, issues, rejected };
  if (!isRecord(raw)) return { doc, issues: [{ path: '', message: 'a routing table is a mapping with regions, services and routes' }], rejected };
  for (const key of Object.keys(raw)) {
    if (!(OBJECT_KINDS as readonly string[]).includes(key)) issues.push({ path: key, message: 'unknown field (expected regions, services or routes)' });
  }
  for (const kind of OBJECT_KINDS) {
    const section = raw[kind];
    if (section === undefined || section === null) continue;
    if (!isRecord(section)) {
      issues.push({ path: kind, message: `expected a mapping of ${kind} by name` });
      continue;
    }
    for (const [name, value] of Object.entries(section)) {
      const result = validateObject(kind, name, value);
      if (result.ok) {
        (doc[kind] as Record<string, unknown>)[name] = result.value;
      } else {
        issues.push(...result.issues);
        rejected.add(`${kind}.${name}`);
      }
    }
  }
  return { doc, issues, rejected };
}

/** Path of a field inside an object, for cross-reference issues. */
export function objectPath(kind: ObjectKind, name: string, ...segments: PropertyKey[]): string {
  return joinPath(`${kind}.${name}`, segments);
}
