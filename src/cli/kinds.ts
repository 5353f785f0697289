import type { ObjectKind } from '../config/routing-schema.js';
import { UsageError } from './args.js';

/** Every way a kind may be written on the command line: plural, singular, and kubectl's short form. */
const KIND_NAMES: Readonly<Record<string, ObjectKind>> = {
  regions: 'regions',
  region: 'regions',
  services: 'services',
  service: 'services',
  svc: 'services',
  routes: 'routes',
  route: 'routes',
};

/** The kind a command-line word names; a usage error listing the kinds otherwise. */
export function parseKind(word: string): ObjectKind {
  const kind = Object.hasOwn(KIND_NAMES, word) ? KIND_NAMES[word] : undefined;
  if (kind === undefined) throw new UsageError(`unknown kind "${word}" (expected region(s), service(s) or svc, route(s))`);
  return kind;
}

/** The singular of a kind, for messages and table names. */
export function singular(kind: ObjectKind): string {
  return kind.slice(0, -1);
}
