import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { getJson, send } from './helpers/client.js';
import { dig } from './helpers/dig.js';
import { startEtcd } from './helpers/etcd.js';
import { waitFor } from './helpers/poll.js';
import { CLI, ROOT, runCli, spawnMeridian, type MeridianProcess } from './helpers/process.js';

const run = promisify(execFile);

/** A fresh checkout's config folder in a temp dir, so what the demo writes (.meridian/) stays there. */
function checkout(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-quickstart-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  cpSync('config', join(dir, 'config'), { recursive: true });
  return dir;
}

/** Every listener of the demo on a loopback port chosen by the system. */
const FREE_PORTS = ['--listen', '127.0.0.1:0', '--tls-listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--dns-listen', '127.0.0.1:0'];

/** `npm start`'s command (as package.json has it) on loopback ports chosen by the system. */
function demo(dir: string): Promise<MeridianProcess> {
  const script = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
  const command = /&& node dist\/cli\.js (.+)$/.exec(script)?.[1] ?? '';
  return spawnMeridian([...command.split(' '), ...FREE_PORTS], { cwd: dir });
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

/** The lines of the first sh code block after `marker` in README.md. */
function readmeBlock(marker: string): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const from = readme.indexOf('```sh\n', readme.indexOf(marker));
  if (readme.indexOf(marker) < 0 || from < 0) throw new Error(`README.md has no sh block after "${marker}"`);
  return readme.slice(from + 6, readme.indexOf('\n```', from + 6)).split('\n');
}

/** A command line split from its trailing `# note`. */
function commandAndNote(line: string): { command: string; note: string } {
  const m = /^(.*?)\s+#\s(.*)$/.exec(line);
  return m === null ? { command: line.trim(), note: '' } : { command: (m[1] as string).trim(), note: m[2] as string };
}

/** Where the tour's fixed ports really are in this test. */
interface Ports {
  proxy: number;
  admin: number;
  dns?: number;
  etcd?: string;
}

/** A README command made to run here: the test's ports, and the built CLI for `npx meridian`. */
function localCommand(command: string, ports: Ports): string {
  let local = command
    .replace(/localhost:8080\b/g, `localhost:${ports.proxy}`)
    .replace(/localhost:9901\b/g, `localhost:${ports.admin}`)
    .replace(/^npx meridian /, `"${process.execPath}" "${CLI}" `);
  if (ports.dns !== undefined) local = local.replace(/-p 5353\b/g, `-p ${ports.dns}`);
  if (ports.etcd !== undefined) {
    local = local.replace(/http:\/\/127\.0\.0\.1:2379\b/g, ports.etcd);
    // The etcd commands default to 127.0.0.1:2379; this test's etcd is elsewhere.
    if (/ (apply|get|weights|drain|undrain|status) /.test(local) && !local.includes('--etcd')) local += ` --etcd ${ports.etcd}`;
  }
  return local;
}

/** Runs one shell line (pipefail: a failing curl fails the line), resolving with its exit code and output. */
function shell(command: string, cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return run('bash', ['-o', 'pipefail', '-c', command], { cwd, timeout: 15_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  );
}

const REGION = /\b(eu-west|us-east|ap-south)\b/g;

t.test('the 5-minute tour, command by command in order, against npm start', async (t) => {
  const dir = checkout(t);
  const proc = await demo(dir);
  t.teardown(() => proc.stop('SIGKILL'));
  const state = (): Promise<{ revision: number; errors: unknown[]; dns: { listen: { port: number } } }> => getJson(proc.adminPort, '/api/v1/state');
  const ports: Ports = { proxy: proc.proxyPort, admin: proc.adminPort, dns: (await state()).dns.listen.port };
  const block = readmeBlock('## A 5-minute tour');
  const steps: { number: number; comment: string; lines: string[] }[] = [];
  for (const line of block) {
    const heading = /^# (\d+)\. (.*)$/.exec(line);
    const current = steps.at(-1);
    if (heading !== null) steps.push({ number: Number(heading[1]), comment: heading[2] as string, lines: [] });
    else if (line.startsWith('#') && current !== undefined) current.comment += ` ${line.slice(1).trim()}`;
    else if (line.trim() !== '' && current !== undefined) current.lines.push(line);
  }
  t.same(steps.map((s) => s.number), [1, 2, 3, 4, 5, 6, 7, 8, 9], 'the tour has its nine steps, in order');
  const routes = join(dir, 'config/routes.yaml');
  for (const step of steps) {
    const before = await state();
    // Steps 5 and 6 edit the routing file as their comment says, then wait for Meridian to see it.
    const edit = /`?(weights: \{[^}]*\})`?/.exec(step.comment)?.[1];
    if (edit !== undefined) {
      const text = readFileSync(routes, 'utf8');
      t.match(text, /weights: \{ stable: \d+, canary: \d+ \}/, `step ${step.number}: the file has the line to edit`);
      writeFileSync(routes, text.replace(/weights: \{ stable: \d+, canary: \d+ \}/, edit));
      if (edit.includes('canery')) await waitFor(async () => (await state()).errors.length > 0, 'the bad edit to be listed', 10_000, 50);
      else await waitFor(async () => (await state()).revision > before.revision, 'the edit to apply', 10_000, 50);
    }
    const outputs: string[] = [];
    for (const line of step.lines) {
      const { command, note } = commandAndNote(line);
      const local = localCommand(command, ports);
      t.notMatch(local, /\b(8080|8443|9901|5353)\b/, `step ${step.number}: "${command}" runs on this test's ports`);
      const result = await shell(local, dir);
      const expectedCode = / validate /.test(local) && edit?.includes('canery') === true ? 1 : 0;
      t.equal(result.code, expectedCode, `step ${step.number}: ${command}\n${result.stderr}`);
      outputs.push(result.stdout + result.stderr);
      // A region or an address in the trailing note is what the command must show.
      const region = [...note.matchAll(REGION)].at(-1)?.[1];
      if (region !== undefined && command.startsWith('curl')) t.match(result.stdout, `"region":"${region}"`, `step ${step.number}: ${command} -> ${region}`);
      for (const ip of note.match(/\b\d+\.\d+\.\d+\.\d+\b/g) ?? []) t.match(result.stdout, ip, `step ${step.number}: ${command} -> ${ip}`);
      if (/serial = routing-table revision/.test(note)) t.equal(result.stdout.trim().split(/\s+/)[2], String((await state()).revision), 'the SOA serial is the revision');
    }
    const all = outputs.join('\n');
    switch (step.number) {
      case 1:
        t.match(all, /x-meridian-region: eu-west/i, 'step 1: the nearest region, shown in a header');
        break;
      case 3: {
        t.match(outputs[0], /set-cookie: mrd-bucket=/i, 'step 3: a sticky bucket is handed out');
        const versions = [...(outputs[1] ?? '').matchAll(/"version":"(\w+)"/g)].map((m) => m[1]);
        t.equal(versions.length, 2);
        t.equal(versions[0], versions[1], 'step 3: the same version twice');
        t.match(outputs[2], '"version":"canary"', 'step 3: a forced version');
        break;
      }
      case 4:
        t.match(all, '"region":"us-east"', 'step 4: api fails over in its explicit order');
        break;
      case 5:
        t.match(all, new RegExp(`"revision":\\s*${(await state()).revision}\\b`), 'step 5: the new revision');
        break;
      case 6:
        t.match(all, /canery/, 'step 6: the error is shown, in the state and by validate');
        t.equal((await send(proc.proxyPort, { path: '/' })).status, 200, 'step 6: the table in force keeps serving');
        break;
      case 7:
        t.match(all, /^meridian_requests_total\{/m, 'step 7: request metrics');
        break;
      case 8: {
        const res = await fetch(`http://127.0.0.1:${proc.adminPort}/`);
        t.equal(res.status, 200, 'step 8: the admin address serves the dashboard');
        t.match(res.headers.get('content-type') ?? '', /^text\/html/, 'step 8: as a web page');
        t.match(await res.text(), /<title>[^<]*Meridian/i, 'step 8: the Meridian dashboard');
        break;
      }
    }
  }
  t.equal(await proc.stop('SIGINT'), 0, 'Ctrl-C stops it cleanly');
});

t.test('the etcd quick start, in order, with a real etcd: demo regions beside an etcd-mode node', async (t) => {
  const dir = checkout(t);
  const lines = readmeBlock('A quick start with a local etcd').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  const [etcdLine = '', demoLine = '', ...rest] = lines;
  t.match(etcdLine, /^etcd --data-dir \S+ &$/, 'first an etcd');
  const etcd = await startEtcd();
  t.teardown(() => etcd.destroy());
  const { command } = commandAndNote(demoLine);
  const args = command.replace(/\s*&$/, '').split(/\s+/);
  t.same(args.slice(0, 3), ['npx', 'meridian', 'demo'], 'then meridian demo');
  const proc = await spawnMeridian([...args.slice(2).map((a) => a.replace('http://127.0.0.1:2379', etcd.url)), ...FREE_PORTS], { cwd: dir });
  t.teardown(() => proc.stop('SIGKILL'));
  const readyz = async (): Promise<number> => (await send(proc.adminPort, { path: '/readyz' })).status;
  t.equal(await readyz(), 503, 'not ready until a table is stored');
  const ports: Ports = { proxy: proc.proxyPort, admin: proc.adminPort, etcd: etcd.url };
  for (const line of rest) {
    const { command: cmd, note } = commandAndNote(line);
    const result = await shell(localCommand(cmd, ports), dir);
    t.equal(result.code, 0, `${cmd}\n${result.stderr}`);
    if (cmd.includes('--dry-run')) t.equal(await readyz(), 503, 'a dry run writes nothing');
    else if (/ apply /.test(cmd)) await waitFor(async () => (await readyz()) === 200, 'the node to be ready once the table is in etcd', 10_000, 50);
    const region = [...note.matchAll(REGION)].at(-1)?.[1];
    if (region !== undefined) t.match(result.stdout, `"region":"${region}"`, `${cmd} -> ${region}, answered by a demo region`);
    if (/ get services web/.test(cmd)) t.match(result.stdout, /"canary"/, 'get shows the service etcd holds');
    if (/grep '\^  "source"'/.test(cmd)) t.equal(result.stdout.trim(), '"source": "etcd",', 'the table comes from etcd');
  }
  const web = JSON.parse((await shell(localCommand('npx meridian get services web', ports), dir)).stdout) as { split: { weights: Record<string, number> } };
  t.same(web.split.weights, { stable: 50, canary: 50 }, 'the weights command changed etcd');
  t.equal(await proc.stop('SIGINT'), 0);

  const bare = await spawnMeridian(['demo', '--etcd', etcd.url, '--node-name', 'no-regions', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'], { cwd: dir });
  t.teardown(() => bare.stop('SIGKILL'));
  t.ok(bare.logs.some((l) => l.level === 'warn' && typeof l.msg === 'string' && l.msg.includes('--regions FILE')), 'without --regions in etcd mode the demo says how to get regions');
  t.equal(await bare.stop('SIGINT'), 0);
});

t.test('demo --regions: a file it cannot use stops the start; start does not take it', async (t) => {
  const dir = checkout(t);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'services:\n  web: { versions: { stable: { endpoints: { nowhere: ["127.0.0.1:9"] } } } }\n');
  const routes = join(dir, 'config/routes.yaml');
  const refused = await runCli(['demo', '--routes', routes, '--regions', bad, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0']);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /services\.web/, 'the problem of the regions file is named');
  const missing = await runCli(['demo', '--routes', routes, '--regions', join(dir, 'nope.yaml'), '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0']);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /nope\.yaml: cannot read/);
  const start = await runCli(['start', '--routes', routes, '--regions', routes]);
  t.equal(start.code, 2);
  t.match(start.stderr, /--regions is an option of "meridian demo"/);
});
