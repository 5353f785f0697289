import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Where the dashboard's files are shipped: `assets/dashboard/` at the package root (from src/admin/ and dist/admin/ alike). */
export const DASHBOARD_DIR = new URL('../../assets/dashboard/', import.meta.url);

/** The page and the files it loads, by URL path, with their content types. */
const FILES: readonly { readonly path: string; readonly file: string; readonly type: string }[] = [
  { path: '/', file: 'index.html', type: 'text/html; charset=utf-8' },
  { path: '/dashboard/dashboard.js', file: 'dashboard.js', type: 'text/javascript; charset=utf-8' },
  { path: '/dashboard/dashboard.css', file: 'dashboard.css', type: 'text/css; charset=utf-8' },
];

/** The page may load only its own files and talk only to this listener; nothing inline runs, nothing frames it. */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

interface Asset {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
}

/**
 * The dashboard's static files, read once when the admin listener starts and
 * served from memory. Only the listed paths exist, so no request path ever
 * reaches the file system. A package missing its files still runs: the page
 * answers 503 saying what is missing.
 */
export class DashboardAssets {
  readonly #assets: ReadonlyMap<string, Asset>;
  /** Why the files could not be read, or null. */
  readonly problem: string | null;

  private constructor(assets: ReadonlyMap<string, Asset>, problem: string | null) {
    this.#assets = assets;
    this.problem = problem;
  }

  /** Reads the files from `dir`; a missing or unreadable one is a problem, not an exception. */
  static async load(dir: URL = DASHBOARD_DIR): Promise<DashboardAssets> {
    try {
      const entries = await Promise.all(
        FILES.map(async ({ path, file, type }) => {
          const body = await readFile(new URL(file, dir));
          const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
          return [path, { body, type, etag }] as const;
        }),
      );
      return new DashboardAssets(new Map(entries), null);
    } catch (err) {
      return new DashboardAssets(new Map(), `dashboard files unreadable: ${(err as Error).message}`);
    }
  }

  /** Whether `path` names a dashboard file (the page, or one under /dashboard/). */
  static owns(path: string): boolean {
    return path === '/' || path.startsWith('/dashboard/');
  }

  /** Answers a GET or HEAD for a dashboard path: the file (304 when the ETag matches), 404 for any other path under /dashboard/. */
  serve(req: IncomingMessage, res: ServerResponse, path: string): void {
    const asset = this.#assets.get(path);
    if (asset === undefined) {
      const [status, text] = this.problem !== null && FILES.some((f) => f.path === path) ? [503, `${this.problem}\n`] : [404, `no dashboard file ${path}\n`];
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
      res.end(text);
      return;
    }
    const headers = {
      'content-type': asset.type,
      'cache-control': 'no-cache',
      etag: asset.etag,
      'content-security-policy': CSP,
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
    };
    if (req.headers['if-none-match'] === asset.etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    res.writeHead(200, { ...headers, 'content-length': asset.body.length });
    res.end(req.method === 'HEAD' ? undefined : asset.body);
  }
}
