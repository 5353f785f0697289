import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake in how a command was invoked; printed with a hint to use --help, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

type Options = NonNullable<ParseArgsConfig['options']>;

const HELP = { help: { type: 'boolean', short: 'h' } } as const;

/** Parses flags strictly: unknown flags and missing values are usage errors, not ignored. */
export function parseFlags<O extends Options>(argv: readonly string[], options: O, positionals: { min: number; max: number }) {
  const config = { args: [...argv], options: { ...options, ...HELP } as O & typeof HELP, allowPositionals: true as const, strict: true as const };
  let parsed: ReturnType<typeof parseArgs<typeof config>>;
  try {
    parsed = parseArgs(config);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const count = parsed.positionals.length;
  if ((parsed.values as Record<string, unknown>).help !== true) {
    if (count < positionals.min) throw new UsageError(`missing argument${positionals.min - count > 1 ? 's' : ''}`);
    if (count > positionals.max) throw new UsageError(`unexpected argument "${parsed.positionals[positionals.max] ?? ''}"`);
  }
  return parsed;
}

/** Flags shared by `start` and `demo`: the static-config overrides of the contract. */
export const START_FLAGS = {
  config: { type: 'string', short: 'c' },
  listen: { type: 'string' },
  admin: { type: 'string' },
  routes: { type: 'string' },
  etcd: { type: 'string' },
  'etcd-prefix': { type: 'string' },
  'dns-listen': { type: 'string' },
  'tls-listen': { type: 'string' },
  'node-name': { type: 'string' },
  region: { type: 'string' },
  'log-level': { type: 'string' },
  'access-log': { type: 'string' },
  workers: { type: 'string' },
} as const;
