import t from 'tap';
import { runCli } from './helpers/process.js';
import { etcdWithRoutesFile } from './helpers/cli.js';

t.test('meridian rollout against a real etcd: start, status, pause, resume, promote, abort', async (t) => {
  const { etcd, client, file } = await etcdWithRoutesFile(t);
  const e = ['--etcd', etcd.url];
  t.equal((await runCli(['apply', '-f', file, ...e])).code, 0);
  const weights = async (): Promise<unknown> => (JSON.parse((await client.get('/meridian/services/web').string()) ?? '{}') as { split: { weights: unknown } }).split.weights;
  const rollout = async (): Promise<{ from: string; to: string; status: { state: string; step: number; reason: string; history: { result: string }[] } }> =>
    JSON.parse((await client.get('/meridian/rollouts/web').string()) ?? 'null') as never;
  const revisions = async (): Promise<[string, string]> => {
    const [r, s] = await Promise.all([client.get('/meridian/rollouts/web').exec(), client.get('/meridian/services/web').exec()]);
    return [r.kvs[0]?.mod_revision ?? '', s.kvs[0]?.mod_revision ?? ''];
  };

  const started = await runCli(['rollout', 'start', 'web', '--to', 'canary', '--steps', '10,50,100', '--hold', '30s', ...e]);
  t.equal(started.code, 0, started.stderr);
  t.match(started.stdout, /rollout of web started: stable -> canary, steps 10,50,100 %, hold 30s; canary takes 10 %/);
  t.same(await weights(), { stable: 90, canary: 10 }, 'the first step is written');
  const [rolloutRev, serviceRev] = await revisions();
  t.equal(rolloutRev, serviceRev, 'rollout and service are written in one transaction');
  t.match(await rollout(), { from: 'stable', to: 'canary', steps: [10, 50, 100], hold: '30s', status: { state: 'running', step: 0, history: [{ result: 'started' }] } });

  const again = await runCli(['rollout', 'start', 'web', '--to', 'canary', ...e]);
  t.equal(again.code, 1);
  t.match(again.stderr, /a rollout of web to canary is running; abort or promote it first/);

  const status = await runCli(['rollout', 'status', 'web', '-o', 'table', ...e]);
  t.equal(status.code, 0, status.stderr);
  t.match(status.stdout, /state: +running/);
  t.match(status.stdout, /step: +1 of 3: canary 10 %, stable 90 %/);
  t.match(status.stdout, /hold: +30s, \d+s left; at least 100 requests to canary/);
  const json = JSON.parse((await runCli(['rollout', 'status', 'web', '-o', 'json', ...e])).stdout) as { key: string; rollout: { status: { state: string } } };
  t.equal(json.key, '/meridian/rollouts/web');
  t.equal(json.rollout.status.state, 'running');

  t.equal((await runCli(['rollout', 'pause', 'web', ...e])).code, 0);
  t.equal((await rollout()).status.state, 'paused');
  t.match((await runCli(['rollout', 'pause', 'web', ...e])).stderr, /already paused/);
  // A person moves the weights by hand while it is paused; resume puts the step's back.
  t.equal((await runCli(['weights', 'web', 'canary=0', 'stable=100', ...e])).code, 0);
  const resumed = await runCli(['rollout', 'resume', 'web', ...e]);
  t.equal(resumed.code, 0, resumed.stderr);
  t.match(resumed.stdout, /resumed by an operator at 10 %/);
  t.same(await weights(), { stable: 90, canary: 10 });

  const promoted = await runCli(['rollout', 'promote', 'web', ...e]);
  t.equal(promoted.code, 0, promoted.stderr);
  t.same(await weights(), { stable: 0, canary: 100 });
  t.match(await rollout(), { status: { state: 'succeeded', step: 2 } });
  t.same((await rollout()).status.history.map((h) => h.result), ['started', 'paused', 'resumed', 'promoted']);
  t.match((await runCli(['rollout', 'abort', 'web', ...e])).stderr, /the rollout has succeeded; start a new one/);

  // Blue-green back the other way: one step of 100, then aborted (rolled back).
  const flip = await runCli(['rollout', 'start', 'web', '--to', 'stable', '--steps', '100', ...e]);
  t.equal(flip.code, 0, flip.stderr);
  t.match(flip.stdout, /canary -> stable/, '--from defaults to the version holding the most weight');
  t.same(await weights(), { stable: 100, canary: 0 }, 'blue-green flips at once');
  t.equal((await runCli(['rollout', 'abort', 'web', ...e])).code, 0);
  t.same(await weights(), { stable: 0, canary: 100 }, 'abort gives the from-version everything again');
  t.match(await rollout(), { status: { state: 'aborted' } });
});

t.test('meridian rollout refuses what cannot be a rollout, and writes nothing', async (t) => {
  const { etcd, client, file } = await etcdWithRoutesFile(t);
  const e = ['--etcd', etcd.url];
  t.equal((await runCli(['apply', '-f', file, ...e])).code, 0);
  const cases: [string[], RegExp, number][] = [
    [['rollout', 'start', 'web', '--to', 'blue'], /no version "blue" to roll out to \(it has stable, canary\)/, 1],
    [['rollout', 'start', 'web', '--to', 'canary', '--from', 'canary'], /to: must differ from "from"/, 1],
    [['rollout', 'start', 'web', '--to', 'canary', '--steps', '1,50'], /the last step must be 100/, 1],
    [['rollout', 'start', 'web', '--to', 'canary', '--steps', 'ten'], /--steps must be whole percents/, 2],
    [['rollout', 'start', 'web', '--to', 'canary', '--hold', 'soon'], /--hold must be a duration/, 2],
    [['rollout', 'start', 'web', '--to', 'canary', '--max-error-rate', '2'], /maxErrorRate: .*(<=|at most|too big).*1/i, 1],
    [['rollout', 'start', 'web'], /start needs --to VERSION/, 2],
    [['rollout', 'start', 'shop', '--to', 'canary'], /\/meridian\/services\/shop: no such service/, 1],
    [['rollout', 'pause', 'web'], /no rollout of web/, 1],
    [['rollout', 'status', 'web'], /no rollout of web/, 1],
    [['rollout', 'pause', 'web', '--steps', '100'], /--steps belongs to rollout start/, 2],
    [['rollout', 'jump', 'web'], /unknown rollout command "jump"/, 2],
  ];
  for (const [args, message, code] of cases) {
    const r = await runCli([...args, ...e]);
    t.equal(r.code, code, `${args.join(' ')}: exit ${code}`);
    t.match(r.stderr, message, args.join(' '));
  }
  t.equal(await client.get('/meridian/rollouts/web').string(), null, 'no rollout key was written');
  t.same((JSON.parse((await client.get('/meridian/services/web').string()) ?? '{}') as { split: { weights: unknown } }).split.weights, { stable: 100, canary: 0 });
  const help = await runCli(['rollout', '--help']);
  t.match(help.stdout, /Usage: meridian rollout start SERVICE --to VERSION/);
  t.match((await runCli(['--help'])).stdout, /rollout +canary and blue-green rollouts/);
});
