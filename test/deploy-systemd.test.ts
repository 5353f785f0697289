import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parseFlags, START_FLAGS } from '../src/cli/args.js';
import { parseDurationMs } from '../src/config/duration.js';
import { buildStaticConfig } from '../src/config/static-load.js';
import { ROOT } from './helpers/process.js';

const run = promisify(execFile);
const UNIT = join(ROOT, 'deploy/systemd/meridian.service');
const text = readFileSync(UNIT, 'utf8');

/** The unit's settings by section; a key set twice keeps every value. */
function sections(unit: string): Map<string, Map<string, string[]>> {
  const result = new Map<string, Map<string, string[]>>();
  let current = new Map<string, string[]>();
  for (const line of unit.split('\n').map((l) => l.trim())) {
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header !== null) {
      current = new Map();
      result.set(header[1] as string, current);
      continue;
    }
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)]);
  }
  return result;
}
const service = sections(text).get('Service') ?? new Map<string, string[]>();
const get = (key: string): string | undefined => service.get(key)?.at(-1);

t.test('the unit runs meridian start with flags start accepts, from the configuration directory', async (t) => {
  t.equal(get('Type'), 'simple', 'Meridian has no sd_notify');
  const exec = get('ExecStart') ?? '';
  t.notMatch(exec, /["'\\$%]/, 'no quoting or expansion: split on spaces as systemd would');
  const [node = '', cli = '', command, ...args] = exec.split(/\s+/);
  t.ok(node.startsWith('/') && cli.startsWith('/') && cli.endsWith('/dist/cli.js'), 'absolute paths to node and the built CLI');
  t.equal(command, 'start');
  const { values } = parseFlags(args, START_FLAGS, { min: 0, max: 0 });
  t.equal(values.config, `/etc/${get('ConfigurationDirectory') ?? '?'}/meridian.yaml`, 'its configuration is in ConfigurationDirectory');
  t.equal(get('WorkingDirectory'), `/var/lib/${get('StateDirectory') ?? '?'}`, 'relative snapshot paths land in StateDirectory');
  t.equal(get('ExecReload'), undefined, 'no reload signal: Meridian has no SIGHUP handler');
  t.match(get('EnvironmentFile') ?? '', /^-\/etc\/meridian\//, 'MERIDIAN_ADMIN_TOKEN from an optional root-only file');
});

t.test('the unit is hardened and waits longer than the drain', async (t) => {
  const wanted: Record<string, string> = {
    DynamicUser: 'yes', NoNewPrivileges: 'yes', ProtectSystem: 'strict', ProtectHome: 'yes', PrivateTmp: 'yes', PrivateDevices: 'yes',
    SystemCallFilter: '@system-service', KillSignal: 'SIGTERM', KillMode: 'mixed', Restart: 'on-failure',
    RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX', CapabilityBoundingSet: '', AmbientCapabilities: '',
  };
  for (const [key, value] of Object.entries(wanted)) t.equal(get(key), value, `${key}=${value}`);
  t.equal(get('MemoryDenyWriteExecute'), undefined, 'not set: the V8 JIT needs it off');
  t.ok(Number(get('LimitNOFILE')) >= 65536, 'LimitNOFILE');
  const defaults = buildStaticConfig({ store: { file: 'routes.yaml' } }).proxy;
  const stopMs = parseDurationMs(get('TimeoutStopSec') ?? '0s') ?? 0;
  t.ok(stopMs > defaults.shutdownTimeout + defaults.shutdownDelay + 10_000, 'TimeoutStopSec leaves room for shutdownTimeout and a shutdownDelay of 10s');
});

const analyze = spawnSync('systemd-analyze', ['--version'], { timeout: 10_000 }).status === 0;
t.test('systemd-analyze verify accepts the unit', { skip: analyze ? false : 'systemd-analyze is not installed' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-systemd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // verify checks that the program exists: where node lives elsewhere, the test names this one.
  const unit = existsSync('/usr/bin/node') ? text : text.replace('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `);
  const file = join(dir, 'meridian.service');
  writeFileSync(file, unit);
  const result = await run('systemd-analyze', ['verify', file], { timeout: 30_000 }).then(
    ({ stderr }) => ({ code: 0, stderr }),
    (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
  );
  t.equal(result.code, 0, result.stderr);
  t.equal(result.stderr.split('\n').filter((l) => l.includes('meridian.service')).join('\n'), '', 'no warning about the unit');
});
