import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parseDocument } from 'yaml';
import { ConfigError, type ConfigIssue } from './issues.js';

/** Parses YAML or JSON text (chosen by file extension; YAML reads JSON too) into a plain value. */
export function parseConfigText(text: string, fileName: string): unknown {
  if (extname(fileName).toLowerCase() === '.json') {
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new ConfigError([{ path: fileName, message: `invalid JSON: ${(err as Error).message}` }]);
    }
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    const issues: ConfigIssue[] = doc.errors.map((e) => {
      const pos = e.linePos?.[0];
      const where = pos === undefined ? fileName : `${fileName}:${pos.line}:${pos.col}`;
      const first = (e.message.split('\n')[0] ?? e.code).replace(/ at line \d+, column \d+:?$/, '');
      return { path: where, message: `invalid YAML: ${first}` };
    });
    throw new ConfigError(issues);
  }
  return doc.toJS({ maxAliasCount: 100 }) as unknown;
}

/** Reads and parses a YAML or JSON file; errors name the file. */
export async function readConfigFile(fileName: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(fileName, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: fileName, message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }]);
  }
  return parseConfigText(text, fileName);
}
