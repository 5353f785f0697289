import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { startEtcd, type TestEtcd } from './etcd.js';
import { CLI, ROOT } from './process.js';

/** No endpoint or prefix from the environment of whoever runs the tests. */
export const CLEAN_ENV = { MERIDIAN_ETCD_ENDPOINTS: undefined, ETCDCTL_ENDPOINTS: undefined, MERIDIAN_ETCD_PREFIX: undefined, MERIDIAN_DEBUG: undefined };

/** Runs meridian on a real pseudo-terminal (util-linux `script`), as a user at a shell would. */
export function runOnTty(args: string[]): Promise<string> {
  const quoted = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qfc', quoted, '/dev/null'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...CLEAN_ENV } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      resolve(out.replace(/\r\n/g, '\n'));
    });
  });
}

/** The cells of a table line, split where columns are (two or more spaces). */
export function cells(line: string | undefined): string[] {
  return (line ?? '').trim().split(/\s{2,}/);
}

/** A small routing table: two regions, one service with a split and endpoints in both, two routes. */
export const ROUTES = {
  regions: { 'eu-west': { location: { lat: 53.35, lon: -6.26 } }, 'us-east': { location: { lat: 38.9, lon: -77.04 } } },
  services: {
    web: {
      split: { weights: { stable: 100, canary: 0 } },
      versions: { stable: { endpoints: { 'eu-west': ['127.0.0.1:7101'] } }, canary: { endpoints: { 'eu-west': ['127.0.0.1:7111', '127.0.0.1:7112'], 'us-east': ['127.0.0.1:7121'] } } },
    },
  },
  routes: { web: { pathPrefix: '/', service: 'web' }, shop: { hosts: ['shop.test'], pathPrefix: '/cart', service: 'web' } },
};


/** A fresh etcd with a client on it and `routes` written to a JSON file, all removed when the test ends. */
export async function etcdWithRoutesFile(t: { teardown(fn: () => Promise<void>): void }, routes: unknown = ROUTES): Promise<{ etcd: TestEtcd; client: Etcd3; file: string }> {
  const etcd = await startEtcd();
  const client = new Etcd3({ hosts: etcd.url });
  t.teardown(async () => {
    client.close();
    await etcd.destroy();
  });
  const file = join(await mkdtemp(join(tmpdir(), 'meridian-cli-')), 'routes.json');
  await writeFile(file, JSON.stringify(routes));
  return { etcd, client, file };
}
