import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { simpleRoutes } from './helpers/meridian.js';
import { CLI } from './helpers/process.js';
import { isLogFormat, prettyWanted } from '../src/observability/logger.js';

/** A config for `meridian start` on free loopback ports, with `log` as given. */
async function config(log: Record<string, unknown> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'meridian-logfmt-'));
  const routes = join(dir, 'routes.yaml');
  // An endpoint nobody listens on, checked often: an "endpoint down" warning comes within a second or two.
  await writeFile(routes, stringify(simpleRoutes({ 'eu-west': ['127.0.0.1:1'] }, { healthCheck: { interval: '200ms', timeout: '100ms', unhealthyThreshold: 1 } })));
  const conf = join(dir, 'meridian.yaml');
  await writeFile(conf, stringify({ proxy: { listen: '127.0.0.1:0' }, admin: { listen: '127.0.0.1:0' }, store: { file: routes, snapshot: join(dir, 'snap.json') }, log }));
  return conf;
}

/**
 * Runs `meridian start` until it logs that it started, on a pseudo-terminal
 * (through `script`) or on a pipe, and returns what it printed.
 */
function runUntilStarted(conf: string, tty: boolean, env: Record<string, string> = {}, until = 'meridian started'): Promise<string> {
  const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} start --config ${JSON.stringify(conf)}`;
  const child = tty
    ? spawn('script', ['-qfc', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env }, detached: true })
    : spawn(process.execPath, [CLI, 'start', '--config', conf], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, detached: true });
  return new Promise((resolve, reject) => {
    let out = '';
    let stopped = false;
    const stop = (): void => {
      if (stopped || child.pid === undefined) return;
      stopped = true;
      // The whole group: `script` and the node process on its terminal.
      process.kill(-child.pid, 'SIGTERM');
    };
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`did not start: ${out}`));
    }, 15_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(until)) stop();
    });
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

const ESC = '\x1b[';

t.test('on a terminal the log is pretty and coloured; on a pipe it is JSON with level names', async (t) => {
  const conf = await config();
  const pretty = await runUntilStarted(conf, true, { MERIDIAN_LOG_FORMAT: '' });
  t.ok(pretty.includes(ESC), 'colour escapes on a terminal');
  t.match(pretty, /INFO.*meridian started/, 'level names in capitals, message in line');
  t.notMatch(pretty, /^\{"level"/m, 'no JSON lines');
  const piped = await runUntilStarted(conf, false);
  const lines = piped.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  t.ok(lines.some((l) => l.msg === 'meridian started' && l.level === 'info'), '"level":"info" on a pipe');
  t.notOk(piped.includes(ESC), 'no colour on a pipe');
});

t.test('log.format and MERIDIAN_LOG_FORMAT choose either way; log.level sets the level', async (t) => {
  const json = await runUntilStarted(await config({ format: 'json' }), true);
  t.match(json, /\{"level":"info".*"msg":"meridian started"\}/, 'log.format: json on a terminal');
  const forced = await runUntilStarted(await config({ format: 'json' }), false, { MERIDIAN_LOG_FORMAT: 'pretty' });
  t.match(forced, /INFO.*meridian started/, 'MERIDIAN_LOG_FORMAT=pretty wins over the file, even on a pipe');
  const quiet = await runUntilStarted(await config({ level: 'warn', format: 'json' }), false, {}, 'endpoint down');
  t.match(quiet, /\{"level":"warn".*"msg":"endpoint down"/, 'warnings are written');
  t.notMatch(quiet, /"level":"info"/, 'log.level: warn leaves out info lines');
  const bad = await runUntilStarted(await config(), false, { MERIDIAN_LOG_FORMAT: 'fancy' }).catch((err: Error) => err.message);
  t.match(bad, /MERIDIAN_LOG_FORMAT must be one of auto, json, pretty/, 'an unknown format is refused');
});

t.test('what auto means', async (t) => {
  t.equal(prettyWanted('auto', true), true, 'auto on a terminal: pretty');
  t.equal(prettyWanted('auto', false), false, 'auto on a pipe: JSON');
  t.equal(prettyWanted('pretty', false), true);
  t.equal(prettyWanted('json', true), false);
  t.equal(isLogFormat('pretty'), true);
  t.equal(isLogFormat('fancy'), false);
});
