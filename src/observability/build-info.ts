import { readFileSync } from 'node:fs';

/**
 * Meridian's version, from the package.json beside `dist/` (and `src/`), which
 * every install keeps (npm packs it, the Docker image copies it); `unknown`
 * when it cannot be read, so metrics never fail over it.
 */
export function meridianVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}
