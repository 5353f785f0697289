import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import type { Test } from 'tap';
import { waitFor } from './poll.js';
import { startUpstream, type TestUpstream } from './upstream.js';

/** A real etcd on loopback free ports in a temp dir, for one test. */
export interface TestEtcd {
  readonly url: string;
  readonly dataDir: string;
  /** SIGKILL: etcd vanishes at once. */
  kill(): Promise<void>;
  /** Starts it again on the same ports and data. */
  restart(): Promise<void>;
  /** Stops it and removes its data. */
  destroy(): Promise<void>;
}

/** A loopback TCP port that was free a moment ago (for programs that cannot report the port they bound). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

async function healthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(500) });
    return res.ok;
  } catch {
    return false;
  }
}

/** Starts `etcd` from PATH (apt-get install etcd-server) and waits until it answers /health. */
export async function startEtcd(): Promise<TestEtcd> {
  const dataDir = await mkdtemp(join(tmpdir(), 'meridian-etcd-'));
  const clientPort = await freePort();
  const peerPort = await freePort();
  const url = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  const start = async (): Promise<void> => {
    const proc = spawn(
      'etcd',
      [
        '--name', 'test', '--data-dir', join(dataDir, 'data'),
        '--listen-client-urls', url, '--advertise-client-urls', url,
        '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `test=${peer}`, '--log-level', 'error',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4096)));
    child = proc;
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    await waitFor(async () => {
      if (proc.exitCode !== null) throw new Error(`etcd exited with ${proc.exitCode}: ${stderr}`);
      return healthy(url);
    }, 'etcd to answer /health', 15_000, 50);
  };
  const kill = async (): Promise<void> => {
    if (child !== null && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  await start();
  return {
    url,
    dataDir,
    kill,
    restart: start,
    async destroy() {
      await kill();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** What most etcd tests start with: a real etcd, a client of it, and one upstream. */
export interface EtcdFixture {
  readonly etcd: TestEtcd;
  readonly client: Etcd3;
  readonly up: TestUpstream;
}

/** Starts an etcd, a client and an upstream labelled `label`; all are stopped when `t` ends. */
export async function etcdFixture(t: Test, label: string): Promise<EtcdFixture> {
  const etcd = await startEtcd();
  const client = new Etcd3({ hosts: etcd.url });
  const up = await startUpstream(label);
  t.teardown(async () => {
    client.close();
    await up.kill();
    await etcd.destroy();
  });
  return { etcd, client, up };
}
