import { stringify } from 'yaml';
import { UsageError } from './args.js';

/** The output formats of `get` and `status`. */
export type OutputFormat = 'json' | 'yaml' | 'table';

const FORMATS: readonly OutputFormat[] = ['json', 'yaml', 'table'];

/** The -o/--output flag. */
export const OUTPUT_FLAG = { output: { type: 'string', short: 'o' } } as const;

/** Help line for OUTPUT_FLAG. */
export const OUTPUT_FLAG_HELP = `  -o, --output FORMAT      json, yaml or table (default: table on a terminal, json when piped)
`;

/** The format asked for, else table on a terminal and json when piped, so scripts keep reading JSON. */
export function outputFormat(asked: string | undefined): OutputFormat {
  if (asked === undefined) return process.stdout.isTTY === true ? 'table' : 'json';
  if (!(FORMATS as readonly string[]).includes(asked)) throw new UsageError(`-o must be one of ${FORMATS.join(', ')}, not "${asked}"`);
  return asked as OutputFormat;
}

/** A document as JSON (two-space indented) or YAML; `table` renders through `table`. */
export function formatDocument(format: OutputFormat, doc: unknown, table: () => string): string {
  if (format === 'json') return `${JSON.stringify(doc, null, 2)}\n`;
  if (format === 'yaml') return stringify(doc);
  return table();
}
