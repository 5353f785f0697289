import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import t from 'tap';
import { CLI, ROOT, runCli } from './helpers/process.js';

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

t.test('--version and -v print the package version and the node version', async (t) => {
  for (const flag of ['--version', '-v']) {
    const res = await runCli([flag]);
    t.equal(res.code, 0);
    t.equal(res.stdout, `meridian ${VERSION} (node ${process.version})\n`);
    t.equal(res.stderr, '');
  }
});

t.test('the top-level help lists every command, the global options and the environment', async (t) => {
  const res = await runCli(['--help']);
  t.equal(res.code, 0);
  for (const word of ['start', 'demo', 'validate', 'apply', 'get', 'weights', 'drain', 'undrain', 'status', '--version', '--debug', 'MERIDIAN_ETCD_ENDPOINTS', 'ETCDCTL_ENDPOINTS', 'MERIDIAN_ETCD_PREFIX', 'MERIDIAN_DEBUG']) {
    t.match(res.stdout, new RegExp(`^\\s+(?:-[a-z], )?${word}\\b`, 'm'), `lists ${word}`);
  }
  for (const command of ['get', 'status', 'drain']) {
    const help = await runCli([command, '--help']);
    t.equal(help.code, 0, `${command} --help`);
    t.match(help.stdout, /MERIDIAN_ETCD_ENDPOINTS/, `${command} --help names the endpoint variables`);
  }
});

t.test('the build leaves dist/cli.js executable, and npx meridian runs it from the checkout without the network', async (t) => {
  t.ok((statSync(CLI).mode & 0o111) === 0o111, 'dist/cli.js is executable by everyone');
  const bin = dirname(process.execPath);
  const npx = existsSync(join(bin, 'npx')) ? join(bin, 'npx') : 'npx';
  const res = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(npx, ['meridian', '--version'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH ?? ''}`, npm_config_offline: 'true', npm_config_update_notifier: 'false' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  t.equal(res.code, 0, res.stderr);
  t.match(res.stdout, new RegExp(`^meridian ${VERSION.replace(/\./g, '\\.')} \\(node v\\d+`));
});
