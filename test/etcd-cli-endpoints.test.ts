import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import t from 'tap';
import { CLEAN_ENV, etcdWithRoutesFile } from './helpers/cli.js';
import { runCli } from './helpers/process.js';

t.test('endpoints and prefix from flag, environment and --config, in that order', async (t) => {
  const { etcd, client, file } = await etcdWithRoutesFile(t);
  const dir = dirname(file);
  const bad = 'http://127.0.0.1:9';
  const hostPort = etcd.url.replace('http://', '');

  t.equal((await runCli(['apply', '-f', file], 15_000, { ...CLEAN_ENV, MERIDIAN_ETCD_ENDPOINTS: etcd.url })).code, 0, 'apply reaches the etcd MERIDIAN_ETCD_ENDPOINTS names');
  const get = (env: Record<string, string | undefined>, extra: string[] = []) => runCli(['get', 'service', 'web', ...extra], 15_000, { ...CLEAN_ENV, ...env });
  t.equal((await get({ MERIDIAN_ETCD_ENDPOINTS: etcd.url, ETCDCTL_ENDPOINTS: bad })).code, 0, 'MERIDIAN_ETCD_ENDPOINTS before ETCDCTL_ENDPOINTS');
  for (let i = 0; i < 2; i++) {
    const split = await get({ MERIDIAN_ETCD_ENDPOINTS: ` ${bad} , ${hostPort} ` });
    t.equal(split.code, 0, `comma-separated, one member down: the other answers (${split.stderr})`);
  }
  const loser = await get({ MERIDIAN_ETCD_ENDPOINTS: bad, ETCDCTL_ENDPOINTS: etcd.url });
  t.equal(loser.code, 1, 'ETCDCTL_ENDPOINTS is not used while MERIDIAN_ETCD_ENDPOINTS is set');
  t.match(loser.stderr, `cannot reach etcd at ${bad}`);
  t.equal((await get({ ETCDCTL_ENDPOINTS: hostPort })).code, 0, 'ETCDCTL_ENDPOINTS alone, host:port as etcdctl takes it');
  t.equal((await get({ MERIDIAN_ETCD_ENDPOINTS: bad, ETCDCTL_ENDPOINTS: bad }, ['--etcd', etcd.url])).code, 0, '--etcd over both variables');

  const config = join(dir, 'm.yaml');
  await writeFile(config, `store:\n  etcd:\n    endpoints: ["${bad}"]\n`);
  t.equal((await get({ MERIDIAN_ETCD_ENDPOINTS: etcd.url }, ['--config', config])).code, 0, 'the variable over store.etcd of --config');
  t.equal((await get({}, ['--config', config])).code, 1, 'store.etcd of --config when nothing else names endpoints');

  t.equal((await runCli(['apply', '-f', file, '--etcd', etcd.url, '--etcd-prefix', '/other/'], 15_000, CLEAN_ENV)).code, 0);
  await client.delete().key('/other/routes/shop');
  const prefixed = await runCli(['get', 'routes', '--etcd', etcd.url], 15_000, { ...CLEAN_ENV, MERIDIAN_ETCD_PREFIX: '/other/' });
  t.same(Object.keys(JSON.parse(prefixed.stdout) as object), ['web'], 'MERIDIAN_ETCD_PREFIX chooses the prefix');
  const flagPrefix = await runCli(['get', 'routes', '--etcd', etcd.url, '--etcd-prefix', '/meridian/'], 15_000, { ...CLEAN_ENV, MERIDIAN_ETCD_PREFIX: '/other/' });
  t.same(Object.keys(JSON.parse(flagPrefix.stdout) as object).sort(), ['shop', 'web'], '--etcd-prefix over MERIDIAN_ETCD_PREFIX');

});
