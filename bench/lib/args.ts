import { parseArgs } from 'node:util';

/** Reads `--name value` flags of a bench program; an unknown flag is a usage error (exit 2). */
export function benchArgs<N extends string>(names: readonly N[]): Record<N, string | undefined> {
  const options: Record<string, { type: 'string' }> = {};
  for (const name of names) options[name] = { type: 'string' };
  try {
    const { values } = parseArgs({ options, strict: true, allowPositionals: false });
    const out = {} as Record<N, string | undefined>;
    for (const name of names) {
      const value = values[name];
      out[name] = typeof value === 'string' ? value : undefined;
    }
    return out;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(2);
  }
}

/** A positive integer flag value, or exits with a usage error naming the flag. */
export function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) {
    process.stderr.write(`--${name}: expected a positive integer, got ${JSON.stringify(value)}\n`);
    process.exit(2);
  }
  return n;
}
