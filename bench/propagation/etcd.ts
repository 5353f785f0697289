/**
 * A real single-member etcd for bench/propagation: `etcd` from PATH on free
 * loopback client and peer ports, its data in the bench's temp dir, started
 * with the same flags as the test suite's etcd.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import { freePort, startProcess, type BenchProcess } from '../lib/process.js';

/** How long one put or get of the bench's client may take before it fails. */
const CALL_TIMEOUT_MS = 5_000;

/** A running etcd and the URL of its client port. */
export interface BenchEtcd {
  readonly url: string;
  readonly process: BenchProcess;
}

async function healthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(500) });
    return res.ok;
  } catch {
    return false;
  }
}

/** Starts the etcd program `command` with its data under `dir`, on free loopback ports; see `waitHealthy`. */
export async function startEtcd(command: string, dir: string): Promise<BenchEtcd> {
  const url = `http://127.0.0.1:${await freePort()}`;
  const peer = `http://127.0.0.1:${await freePort()}`;
  const proc = startProcess('etcd', command, [
    '--name', 'bench', '--data-dir', join(dir, 'etcd-data'),
    '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `bench=${peer}`, '--log-level', 'error',
  ]);
  return { url, process: proc };
}

/** Resolves once etcd answers /health; throws with its output when it exits or `timeoutMs` passes. */
export async function waitHealthy(etcd: BenchEtcd, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (etcd.process.child.exitCode !== null) throw new Error(`etcd exited with ${etcd.process.child.exitCode}:\n${etcd.process.output()}`);
    if (await healthy(etcd.url)) return;
    await sleep(50);
  }
  throw new Error(`etcd did not answer /health within ${timeoutMs}ms:\n${etcd.process.output()}`);
}

/** An etcd client for `url` whose unary calls (put, get) fail after a deadline instead of hanging. */
export function etcdClient(url: string): Etcd3 {
  return new Etcd3({
    hosts: url,
    dialTimeout: 3_000,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + CALL_TIMEOUT_MS }),
  });
}
