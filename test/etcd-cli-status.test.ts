import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { cells, CLEAN_ENV, etcdWithRoutesFile, runOnTty } from './helpers/cli.js';
import { runCli } from './helpers/process.js';

t.test('status: nodes, drained regions and endpoints, and down endpoints by service, version and region', async (t) => {
  const { etcd, client, file } = await etcdWithRoutesFile(t);
  const e = ['--etcd', etcd.url];
  const run = (args: string[]) => runCli([...args, ...e], 15_000, CLEAN_ENV);
  t.equal((await run(['apply', '-f', file])).code, 0);

  const none = (await run(['status', '-o', 'table'])).stdout;
  t.match(none, /0 nodes alive/);
  t.match(none, /Drained regions: none/);
  t.match(none, /Drained endpoints: none/);
  t.match(none, /Down endpoints: none/);

  t.equal((await run(['drain', 'regions', 'us-east'])).code, 0, 'drain takes the plural too');
  t.equal((await run(['drain', 'endpoints', '127.0.0.1:7112'])).code, 0);
  // A view as a node publishes it: one with the address field, one from a node that predates it.
  const since = new Date().toISOString();
  await client.put('/meridian/nodes/edge-1').value(
    JSON.stringify({
      node: 'edge-1',
      region: 'eu-west',
      revision: 5,
      updatedAt: since,
      endpoints: {
        '127.0.0.1:7101 /healthz 200-399 5000/2000 2/3': { address: '127.0.0.1:7101', up: false, state: 'down', reason: 'connect-refused', since },
        '127.0.0.1:7111 /healthz 200-399 5000/2000 2/3': { up: false, state: 'down', reason: 'status-503', since },
        '127.0.0.1:7121 /healthz 200-399 5000/2000 2/3': { address: '127.0.0.1:7121', up: true, state: 'healthy', reason: 'ok', since },
        '10.9.9.9:80 tcp 5000/2000 2/3': { address: '10.9.9.9:80', up: false, state: 'down', reason: 'timeout', since: 'garbled' },
      },
    }),
  );
  const table = (await run(['status', '-o', 'table'])).stdout;
  const lines = table.split('\n');
  t.match(table, /1 node alive/);
  const nodeHeader = lines.findIndex((l) => l.startsWith('NODE') && l.includes('TABLE-REVISION'));
  t.same(cells(lines[nodeHeader]), ['NODE', 'REGION', 'TABLE-REVISION', 'ENDPOINTS', 'UPDATED']);
  t.match(cells(lines[nodeHeader + 1]), ['edge-1', 'eu-west', '5', '1/4 up', /^\d+s ago$/]);
  const drainedRegions = lines.indexOf('Drained regions:');
  t.same(cells(lines[drainedRegions + 2]), ['us-east']);
  const drainedEndpoints = lines.indexOf('Drained endpoints:');
  t.same(cells(lines[drainedEndpoints + 1]), ['SERVICE', 'VERSION', 'REGION', 'ENDPOINT']);
  t.same(cells(lines[drainedEndpoints + 2]), ['web', 'canary', 'eu-west', '127.0.0.1:7112']);
  const down = lines.indexOf('Down endpoints:');
  t.same(cells(lines[down + 1]), ['NODE', 'SERVICE', 'VERSION', 'REGION', 'ENDPOINT', 'REASON', 'SINCE']);
  const downRows = lines.slice(down + 2).filter((l) => l !== '').map(cells);
  t.match(downRows, [
    ['edge-1', 'web', 'stable', 'eu-west', '127.0.0.1:7101', 'connect-refused', /ago$/],
    ['edge-1', 'web', 'canary', 'eu-west', '127.0.0.1:7111', 'status-503', /ago$/],
    ['edge-1', '-', '-', '-', '10.9.9.9:80', 'timeout', '?'],
  ]);
  t.equal(downRows.length, 3, 'the healthy endpoint is not listed');

  const json = JSON.parse((await run(['status', '-o', 'json'])).stdout) as { revision: number; nodes: Array<{ node: string }>; drained: unknown; down: unknown[] };
  t.same(json.nodes.map((n) => n.node), ['edge-1'], 'the views as published');
  t.same(json.drained, { regions: ['us-east'], endpoints: [{ service: 'web', version: 'canary', region: 'eu-west', address: '127.0.0.1:7112' }] });
  t.match(json.down[1], { node: 'edge-1', address: '127.0.0.1:7111', reason: 'status-503', uses: [{ service: 'web', version: 'canary', region: 'eu-west', address: '127.0.0.1:7111' }] });
  t.same(JSON.parse((await run(['status', '--json'])).stdout), json, '--json is -o json');
  t.same(JSON.parse((await run(['status'])).stdout), json, 'piped, the default is JSON');
  t.same(parseYaml((await run(['status', '-o', 'yaml'])).stdout), json, 'YAML holds the same document');

  await client.put('/meridian/nodes/broken').value('{');
  const withBroken = (await run(['status', '-o', 'table'])).stdout;
  t.match(withBroken, /2 nodes alive/, 'a node key that is not a view still counts');
  t.match(withBroken, /^broken\s+-\s+0\s+0\/0 up\s+\?$/m);
  t.match(await runOnTty(['status', ...e]), /^NODE\s+REGION\s+TABLE-REVISION/m, 'on a terminal the default is the table');
});
