/**
 * The baseline of bench/dns: gdnsd 3 serving the bench zone from a static
 * zone file (the answers Meridian gives a client it cannot place, without any
 * geo logic), in the foreground, from a config dir in the bench's temp dir.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startProcess } from '../lib/process.js';
import { waitForAnswer } from './probe.js';
import { freeDnsPort, tail, type DnsServer } from './server.js';
import { NAMESERVER, REGIONS, ROUTE_HOSTS, TTL_SECONDS, ZONE, type BenchRegion } from './zone.js';

/** gdnsd's config: one listener, `threads` UDP threads, run and state dirs inside `dir` instead of /run and /var/lib. */
function configText(dir: string, port: number, threads: number): string {
  return `options => {
  listen => [ "127.0.0.1:${port}" ]
  udp_threads => ${threads}
  tcp_threads => 1
  run_dir => "${join(dir, 'run')}"
  state_dir => "${join(dir, 'state')}"
  zones_default_ttl => ${TTL_SECONDS}
}
`;
}

/** The zone file: SOA, NS, and every route host with the first region's edge addresses. */
function zoneText(region: BenchRegion): string {
  const relative = (name: string): string => name.slice(0, -(ZONE.length + 1));
  const hosts = ROUTE_HOSTS.flatMap((host) => [`${relative(host)} A ${region.ipv4}`, `${relative(host)} AAAA ${region.ipv6}`]);
  return [
    `$TTL ${TTL_SECONDS}`,
    `@ SOA ${relative(NAMESERVER)} hostmaster 1 3600 600 86400 ${TTL_SECONDS}`,
    `@ NS ${relative(NAMESERVER)}`,
    `${relative(NAMESERVER)} A 127.0.0.1`,
    ...hosts,
    '',
  ].join('\n');
}

/** The candidate name of gdnsd with `threads` UDP threads. */
export function gdnsdName(threads: number): string {
  return `gdnsd-${threads}t`;
}

/**
 * Writes gdnsd's config dir under `dir` and starts `gdnsd -c DIR start` (the
 * 3.x foreground action) with `threads` UDP listener threads; resolves once it
 * answers. Throws with gdnsd's output when it does not start.
 */
export async function startGdnsd(binary: string, dir: string, threads: number): Promise<DnsServer> {
  const name = gdnsdName(threads);
  const home = join(dir, name);
  mkdirSync(join(home, 'zones'), { recursive: true });
  mkdirSync(join(home, 'run'), { recursive: true });
  mkdirSync(join(home, 'state'), { recursive: true });
  const port = await freeDnsPort();
  writeFileSync(join(home, 'config'), configText(home, port, threads));
  writeFileSync(join(home, 'zones', ZONE), zoneText(REGIONS[0] as BenchRegion));
  const proc = startProcess(name, binary, ['-c', home, 'start']);
  const server: DnsServer = {
    name,
    description: `one process, ${threads} UDP thread(s), static zone (no geo logic)`,
    judged: false,
    port,
    process: proc,
    stop: () => proc.stop(),
    kill: () => {
      if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
    },
  };
  try {
    await waitForAnswer(
      port,
      { name: ROUTE_HOSTS[0], type: 'A' },
      (a) => a.rcode === 'NOERROR' && a.answers.length > 0,
      () => (proc.child.exitCode === null && proc.child.signalCode === null ? null : `${name} exited with ${proc.child.exitCode ?? proc.child.signalCode}:\n${tail(proc.output())}`),
      10_000,
    );
  } catch (err) {
    await proc.stop();
    throw new Error(`${(err as Error).message}\n${tail(proc.output())}`);
  }
  return server;
}
