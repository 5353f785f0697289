import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { getJson, send } from './helpers/client.js';
import { dig } from './helpers/dig.js';
import { spawnMeridian, type MeridianProcess } from './helpers/process.js';

const run = promisify(execFile);

/** A fresh checkout's config folder in a temp dir, so what the demo writes (.meridian/) stays there. */
function checkout(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-quickstart-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  cpSync('config', join(dir, 'config'), { recursive: true });
  return dir;
}

/** `npm start`'s command on loopback ports chosen by the system. */
function demo(dir: string): Promise<MeridianProcess> {
  return spawnMeridian(['demo', '--config', 'config/meridian.yaml', '--listen', '127.0.0.1:0', '--tls-listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--dns-listen', '127.0.0.1:0'], { cwd: dir });
}

t.test('the quick start: bundled config with demo regions answers at once', async (t) => {
  const proc = await demo(checkout(t));
  t.teardown(() => proc.stop('SIGKILL'));
  const home = await send(proc.proxyPort, { path: '/' });
  t.equal(home.status, 200);
  const body = JSON.parse(home.text) as { region: string; version: string };
  t.equal(body.region, 'eu-west', 'a local client is steered to the node region');
  t.equal(home.headers['x-meridian-region'], 'eu-west');
  const fromSingapore = JSON.parse((await send(proc.proxyPort, { path: '/', headers: { 'x-forwarded-for': '10.3.0.9', 'x-meridian-version': 'stable' } })).text) as { region: string };
  t.equal(fromSingapore.region, 'ap-south', 'the tour: a client in 10.3.0.0/16 (Singapore) reaches ap-south');
  const api = JSON.parse((await send(proc.proxyPort, { path: '/', headers: { host: 'api.example.com' } })).text) as { region: string };
  t.equal(api.region, 'us-east', 'the api service fails over in its explicit order');
  const state = await getJson<{ source: string; regions: Record<string, unknown>; services: Record<string, unknown>; dns: { listen: { port: number } } }>(proc.adminPort, '/api/v1/state');
  t.same(Object.keys(state.regions).sort(), ['ap-south', 'eu-west', 'us-east']);
  const answer = await dig(state.dns.listen.port, ['www.example.com', '+subnet=10.2.0.0/24']);
  t.same(answer.answers.map((a) => a.data), ['203.0.113.20'], 'the tour: GeoDNS answers us-east for 10.2.0.0/24');
  t.same(Object.keys(state.services).sort(), ['api', 'web']);
  const access = proc.logs.filter((l) => l.type === 'request');
  t.same(access.map((l) => [l.status, l.region, l.service]), [[200, 'eu-west', 'web'], [200, 'ap-south', 'web'], [200, 'us-east', 'api']], 'the demo writes its access log to stdout, a JSON line per request');
  t.equal(await proc.stop('SIGINT'), 0, 'Ctrl-C stops it cleanly');
});

t.test('the HTTPS quick start: the demo makes a self-signed localhost certificate once and serves HTTP/2 and HTTP/1.1 with it', async (t) => {
  const dir = checkout(t);
  const proc = await demo(dir);
  t.teardown(() => proc.stop('SIGKILL'));
  const cert = join(dir, '.meridian/demo/localhost.pem');
  const key = join(dir, '.meridian/demo/localhost.key');
  t.equal(statSync(key).mode & 0o777, 0o600, 'the private key is readable by its owner only');
  const made = proc.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('made a self-signed demo certificate'));
  t.ok(made, 'the log says where the certificate is and how to use it');
  const tlsPort = (proc.logs.find((l) => l.msg === 'meridian started') as { tls: { port: number } }).tls.port;
  for (const [flag, version] of [['--http2', '2'], ['--http1.1', '1.1']] as const) {
    const { stdout } = await run('curl', ['-sS', '--max-time', '5', flag, '--cacert', cert, '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `https://localhost:${tlsPort}/`]);
    t.equal(stdout, `${version} 200`, `curl ${flag} --cacert verifies the certificate for localhost and is served`);
  }
  const ip = await run('curl', ['-sS', '--max-time', '5', '--cacert', cert, '-o', '/dev/null', '-w', '%{http_code}', `https://127.0.0.1:${tlsPort}/`]);
  t.equal(ip.stdout, '200', 'and for 127.0.0.1');
  t.equal(await proc.stop('SIGINT'), 0);

  const before = readFileSync(cert, 'utf8');
  const again = await demo(dir);
  t.teardown(() => again.stop('SIGKILL'));
  t.equal(readFileSync(cert, 'utf8'), before, 'a second start keeps the certificate it made (curl keeps trusting it)');
  t.notOk(again.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('made a self-signed')), 'and makes none');
  t.equal(await again.stop('SIGINT'), 0);
});
