import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { loadStaticConfig } from '../src/config/static-load.js';
import { validateRoutingObjects } from '../src/config/routing-validate.js';
import { parseEndpointAddress } from '../src/net/address.js';
import { ROOT, runCli } from './helpers/process.js';

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  healthcheck?: { test?: string[]; disable?: boolean };
  depends_on?: Record<string, { condition: string }>;
  restart?: string;
}

const DEPLOY = join(ROOT, 'deploy');
const compose = parse(readFileSync(join(DEPLOY, 'compose.yaml'), 'utf8')) as { services: Record<string, Service>; volumes: Record<string, unknown> };
const services = Object.entries(compose.services);
const etcds = services.filter(([, s]) => s.image?.startsWith('quay.io/coreos/etcd:') === true);
const edges = services.filter(([, s]) => s.command?.[0] === 'start');
const applyService = compose.services.apply as Service;
/** `--flag=value` arguments of a command as a map. */
const flags = (command: readonly string[]): Map<string, string> => new Map(command.filter((a) => a.startsWith('--') && a.includes('=')).map((a) => [a.slice(2, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]));
/** The value after `--flag` in an exec-form command. */
const after = (command: readonly string[], flag: string): string | undefined => command[command.indexOf(flag) + 1];
/** The host file mounted at `target`, resolved from the compose file's folder. */
const mounted = (service: Service, target: string): string | undefined => {
  const volume = service.volumes?.find((v) => v.split(':')[1] === target);
  return volume === undefined ? undefined : resolve(DEPLOY, volume.split(':')[0] as string);
};
const clientUrls = etcds.map(([, s]) => flags(s.command ?? []).get('advertise-client-urls')).sort();

t.test('three etcd members, each in every member\'s static --initial-cluster', async (t) => {
  t.equal(etcds.length, 3);
  const clusters = new Set(etcds.map(([, s]) => flags(s.command ?? []).get('initial-cluster')));
  t.equal(clusters.size, 1, 'one --initial-cluster for all');
  const cluster = new Map([...clusters][0]?.split(',').map((m) => m.split('=') as [string, string]));
  t.same([...cluster.keys()].sort(), etcds.map(([name]) => name).sort(), 'it lists exactly the members');
  for (const [name, service] of etcds) {
    const f = flags(service.command ?? []);
    t.equal(f.get('name'), name, `${name}: --name is the service name`);
    t.equal(cluster.get(name), f.get('initial-advertise-peer-urls'), `${name}: its peer URL is the one the cluster lists`);
    t.equal(f.get('initial-advertise-peer-urls'), `http://${name}:2380`);
    t.equal(f.get('advertise-client-urls'), `http://${name}:2379`);
    t.equal(f.get('initial-cluster-state'), 'new');
    t.ok(service.volumes?.some((v) => v.startsWith(`${name}:`) && v.endsWith(f.get('data-dir') ?? '?')), `${name}: its data dir is on a volume`);
    t.ok(service.healthcheck?.test?.includes('health'), `${name}: has a health check`);
  }
});

t.test('two edges in etcd mode, built from the Dockerfile, on every etcd member, checked with meridian ready', async (t) => {
  t.equal(edges.length, 2);
  const names = new Set<string>();
  const routes = validateRoutingObjects(parse(readFileSync(mounted(applyService, after(applyService.command ?? [], '-f') ?? '') ?? '', 'utf8')));
  for (const [name, edge] of edges) {
    const command = edge.command ?? [];
    t.ok(edge.build !== undefined && existsSync(join(resolve(DEPLOY, edge.build.context), edge.build.dockerfile)), `${name}: built from the repository's Dockerfile`);
    const configPath = after(command, '--config') ?? '';
    const configFile = mounted(edge, configPath);
    t.ok(configFile !== undefined && existsSync(configFile), `${name}: ${configPath} is mounted from a file that exists`);
    t.match(edge.environment?.MERIDIAN_ADMIN_TOKEN ?? '', /^\$\{MERIDIAN_ADMIN_TOKEN:\?.+\}$/, `${name}: the admin token comes from the environment, required`);
    const config = await loadStaticConfig(configFile, { nodeName: after(command, '--node-name'), region: after(command, '--region') }, { MERIDIAN_ADMIN_TOKEN: 'compose-test' });
    t.same([...(config.store.etcd?.endpoints ?? [])].sort(), clientUrls, `${name}: store.etcd lists all three members`);
    t.ok(Object.keys(routes.doc.regions).includes(config.node.region ?? ''), `${name}: its region (${config.node.region ?? ''}) is in the table`);
    names.add(config.node.name);
    t.same(edge.healthcheck?.test, ['CMD', 'node', '/app/dist/cli.js', 'ready', '--config', configPath], `${name}: the health check is meridian ready on its configuration`);
    const published = (edge.ports ?? []).map((p) => p.split(':').at(-1));
    t.ok(published.includes(`${config.proxy.listen.port}`), `${name}: the proxy port is published`);
    t.ok((edge.ports ?? []).every((p) => p.startsWith('127.0.0.1:')), `${name}: published on the host's loopback only`);
    if (config.dns !== undefined && published.some((p) => p?.endsWith('/udp'))) {
      t.ok(published.includes(`${config.dns.listen.port}/udp`) && published.includes(`${config.dns.listen.port}/tcp`), `${name}: GeoDNS published on udp and tcp`);
    }
    t.same(Object.keys(edge.depends_on ?? {}).sort(), etcds.map(([n]) => n).sort(), `${name}: waits for every etcd member`);
    t.ok(edge.volumes?.some((v) => v.endsWith(`:${config.store.snapshot.slice(0, config.store.snapshot.lastIndexOf('/'))}`)), `${name}: its last-good snapshot is on a volume`);
  }
  t.equal(names.size, 2, 'the edges have distinct node names');
});

t.test('the one-shot apply writes a table that validates, whose endpoints are the demo region containers', async (t) => {
  const command = applyService.command ?? [];
  t.equal(command[0], 'apply');
  t.same(after(command, '--etcd')?.split(',').sort(), clientUrls, 'apply talks to every member');
  t.equal(applyService.restart, 'on-failure', 'retried until the cluster answers');
  t.equal(applyService.healthcheck?.disable, true, 'a one-shot has no readiness to check');
  const file = mounted(applyService, after(command, '-f') ?? '') ?? '';
  const validated = await runCli(['validate', file]);
  t.equal(validated.code, 0, validated.stderr);
  const { doc } = validateRoutingObjects(parse(readFileSync(file, 'utf8')));
  const listening = new Map(services.flatMap(([name, s]) => {
    const listen = (s.command ?? []).find((a) => a.startsWith('-listen='));
    return listen === undefined ? [] : [[name, Number(listen.split(':').at(-1))] as const];
  }));
  let endpoints = 0;
  for (const service of Object.values(doc.services)) {
    for (const version of Object.values(service.versions)) {
      for (const list of Object.values(version.endpoints)) {
        for (const endpoint of list) {
          endpoints++;
          const { host, port } = endpoint.address;
          t.equal(listening.get(host), port, `${host}:${port} is a region container listening there`);
        }
      }
    }
  }
  t.ok(endpoints > 0);
  t.equal(typeof parseEndpointAddress('region-eu-west:5678'), 'object', 'container names are endpoint host names');
});

t.test('every named volume a service mounts is declared', async (t) => {
  for (const [name, service] of services) {
    for (const volume of service.volumes ?? []) {
      const source = volume.split(':')[0] as string;
      if (source.startsWith('.') || source.startsWith('/')) t.ok(existsSync(resolve(DEPLOY, source)), `${name}: ${source} exists`);
      else t.ok(source in compose.volumes, `${name}: volume ${source} is declared`);
    }
  }
});
