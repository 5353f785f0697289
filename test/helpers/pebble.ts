import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { get } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './poll.js';

/** Why ACME tests cannot run here, or null when pebble and pebble-challtestsrv are on PATH. */
export function pebbleMissing(): string | null {
  for (const tool of ['pebble', 'pebble-challtestsrv']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed (Debian: apt-get install pebble)`;
    }
  }
  return null;
}

/** A free loopback TCP port (for listeners whose port another process must know before they start). */
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

/** A running Pebble (test ACME CA) with its own DNS answering 127.0.0.1 for every name. */
export interface TestPebble {
  /** The ACME directory URL. */
  readonly directory: string;
  /** The CA of Pebble's own HTTPS (for `proxy.tls.acme.caFile`). */
  readonly caFile: string;
  /** A file with Pebble's issuing root and intermediate, for clients checking the certificates it issued. */
  readonly rootsFile: string;
  stop(): Promise<void>;
}

function https(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get(url, { ca, timeout: 2_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: timeout`)));
    req.on('error', reject);
  });
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * Starts pebble-challtestsrv (DNS only: every name is 127.0.0.1) and Pebble
 * validating HTTP-01 on `httpPort` and TLS-ALPN-01 on `tlsPort` (Meridian's
 * listeners), issuing certificates valid for `validitySeconds`.
 */
export async function startPebble(options: { httpPort: number; tlsPort: number; validitySeconds?: number }): Promise<TestPebble> {
  const dir = await mkdtemp(join(tmpdir(), 'meridian-pebble-'));
  const caFile = join(dir, 'pebble.pem');
  await new Promise<void>((resolve, reject) =>
    execFile('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'pebble.key'), '-out', caFile, '-days', '2',
      '-subj', '/CN=pebble', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { timeout: 20_000 }, (err) => (err === null ? resolve() : reject(err))),
  );
  const [listen, management, dns, dnsManagement] = [await freePort(), await freePort(), await freePort(), await freePort()];
  await writeFile(join(dir, 'config.json'), JSON.stringify({
    pebble: {
      listenAddress: `127.0.0.1:${listen}`,
      managementListenAddress: `127.0.0.1:${management}`,
      certificate: caFile,
      privateKey: join(dir, 'pebble.key'),
      httpPort: options.httpPort,
      tlsPort: options.tlsPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
      ...(options.validitySeconds === undefined ? {} : { certificateValidityPeriod: options.validitySeconds }),
    },
  }));
  const children: ChildProcess[] = [];
  let output = '';
  const run = (command: string, args: string[], env: Record<string, string> = {}): ChildProcess => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    const keep = (d: Buffer): void => void (output = (output + d.toString()).slice(-8192));
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    children.push(child);
    return child;
  };
  const stop = async (): Promise<void> => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await Promise.all(children.map(exited));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    run('pebble-challtestsrv', ['-defaultIPv4', '127.0.0.1', '-defaultIPv6', '', '-dns01', `127.0.0.1:${dns}`, '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `127.0.0.1:${dnsManagement}`]);
    // No artificial validation delay, no nonces refused at random: the tests count orders exactly.
    const pebble = run('pebble', ['-config', join(dir, 'config.json'), '-dnsserver', `127.0.0.1:${dns}`], { PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' });
    const ca = await readFile(caFile, 'utf8');
    const directory = `https://127.0.0.1:${listen}/dir`;
    await waitFor(async () => {
      if (pebble.exitCode !== null) throw new Error(`pebble exited: ${output}`);
      return https(directory, ca);
    }, 'pebble to serve its directory', 15_000, 50);
    const rootsFile = join(dir, 'roots.pem');
    await writeFile(rootsFile, `${await https(`https://127.0.0.1:${management}/roots/0`, ca)}\n${await https(`https://127.0.0.1:${management}/intermediates/0`, ca)}\n`);
    return { directory, caFile, rootsFile, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** `curl` over HTTPS to `name` at 127.0.0.1:`port`, trusting only `caFile`; resolves with the status and body, or the failure. */
export function curlHttps(name: string, port: number, caFile: string): Promise<{ ok: boolean; status: number; body: string; error: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '5', '--cacert', caFile, '--resolve', `${name}:${port}:127.0.0.1`, '-w', '\n%{http_code}', `https://${name}:${port}/`], { timeout: 10_000 }, (err, stdout, stderr) => {
      const cut = stdout.lastIndexOf('\n');
      const status = Number(stdout.slice(cut + 1));
      resolve({ ok: err === null, status, body: stdout.slice(0, cut), error: stderr });
    });
  });
}
