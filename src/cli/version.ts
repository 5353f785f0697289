import { readFileSync } from 'node:fs';

/** `meridian VERSION (node vX.Y.Z)`: the version of package.json, which sits two folders up from both src/cli and dist/cli. */
export function versionLine(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
  return `meridian ${typeof pkg.version === 'string' ? pkg.version : 'unknown'} (node ${process.version})\n`;
}
