import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parseDocument } from 'yaml';
import { ConfigError, type ConfigIssue } from './issues.js';

/**
 * Values a document may hold once YAML aliases are expanded. yaml shares an
 * aliased node instead of copying it, so parsing stays cheap, but everything
 * downstream (validation, snapshots) walks the expansion: an alias bomb must
 * stop here. Ten thousand services with every option set stay far below it.
 */
export const MAX_DOCUMENT_VALUES = 5_000_000;

/** Counts values reachable from `root`, shared ones once per reference; stops past `limit`. */
function expandedSize(root: unknown, limit: number): number {
  const stack: unknown[] = [root];
  let count = 0;
  while (stack.length > 0 && count <= limit) {
    const value = stack.pop();
    count++;
    if (value !== null && typeof value === 'object') {
      for (const child of Object.values(value)) stack.push(child);
    }
  }
  return count;
}

function syntaxError(where: string, message: string): ConfigError {
  return new ConfigError([{ path: where, message, reason: 'syntax' }]);
}

function parseYaml(text: string, fileName: string): unknown {
  // Warnings are refused like errors (an unknown tag would silently become a string); none go to stderr.
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true, logLevel: 'error' });
  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length > 0) {
    const issues: ConfigIssue[] = problems.map((e) => {
      const pos = e.linePos?.[0];
      const where = pos === undefined ? fileName : `${fileName}:${pos.line}:${pos.col}`;
      const first = (e.message.split('\n')[0] ?? e.code).replace(/ at line \d+, column \d+:?$/, '');
      return { path: where, message: `invalid YAML: ${first}`, reason: 'syntax' };
    });
    throw new ConfigError(issues);
  }
  // The expansion is bounded below instead of by counting aliases, so a table may use an anchor thousands of times.
  return doc.toJS({ maxAliasCount: -1 }) as unknown;
}

/**
 * Parses YAML or JSON text (chosen by file extension; YAML reads JSON too) into a
 * plain value. Every failure is a ConfigError naming the file: malformed text,
 * unresolvable aliases, or a document that expands past MAX_DOCUMENT_VALUES.
 */
export function parseConfigText(text: string, fileName: string): unknown {
  let value: unknown;
  try {
    value = extname(fileName).toLowerCase() === '.json' ? (JSON.parse(text) as unknown) : parseYaml(text, fileName);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const kind = extname(fileName).toLowerCase() === '.json' ? 'JSON' : 'YAML';
    throw syntaxError(fileName, `invalid ${kind}: ${(err as Error).message}`);
  }
  if (expandedSize(value, MAX_DOCUMENT_VALUES) > MAX_DOCUMENT_VALUES) {
    throw syntaxError(fileName, `the document expands to more than ${MAX_DOCUMENT_VALUES.toLocaleString('en')} values (YAML aliases nested too deep?)`);
  }
  return value;
}

/** Reads and parses a YAML or JSON file; errors name the file. */
export async function readConfigFile(fileName: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(fileName, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: fileName, message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, reason: 'unreadable' }]);
  }
  return parseConfigText(text, fileName);
}
