import { execFile, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parse, parseAllDocuments } from 'yaml';
import { parseFlags, START_FLAGS } from '../src/cli/args.js';
import { routingIssues } from '../src/cli/validate.js';
import { buildStaticConfig, environmentFlags } from '../src/config/static-load.js';
import { ROOT } from './helpers/process.js';

const run = promisify(execFile);
const DIR = join(ROOT, 'deploy/kubernetes');

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}
interface Port { name?: string; containerPort: number; protocol?: string }
interface Probe { httpGet?: { path: string; port: string | number } }
interface Container {
  args: string[];
  env: { name: string; valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string } } }[];
  ports: Port[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: unknown };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; capabilities?: { drop?: string[] } };
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface PodSpec {
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsNonRoot?: boolean; seccompProfile?: { type: string } };
  containers: Container[];
  volumes: { name: string; configMap?: { name: string }; emptyDir?: unknown }[];
}

const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
const manifests: Manifest[] = files.flatMap((f) =>
  parseAllDocuments(readFileSync(join(DIR, f), 'utf8')).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${f}: ${doc.errors[0]?.message ?? ''}`);
    return doc.toJS() as Manifest;
  }),
);
const one = (kind: string): Manifest => {
  const found = manifests.filter((m) => m.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0] as Manifest;
};
const deployment = one('Deployment');
const depSpec = deployment.spec as { replicas: number; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
const pod = depSpec.template.spec;
const container = pod.containers[0] as Container;
const configMap = one('ConfigMap');
const configMount = container.volumeMounts.find((m) => pod.volumes.find((v) => v.name === m.name)?.configMap?.name === configMap.metadata.name);
/** The file's key in the ConfigMap when `path` lies in its mount. */
const configKey = (path: string): string | undefined => (configMount !== undefined && path.startsWith(`${configMount.mountPath}/`) ? path.slice(configMount.mountPath.length + 1) : undefined);
const configPath = container.args[container.args.indexOf('--config') + 1] ?? '';
// The Secret's value arrives through the environment: judged as the pod would see it.
const config = buildStaticConfig(parse(configMap.data?.[configKey(configPath) ?? ''] ?? '') as unknown, environmentFlags({ MERIDIAN_ADMIN_TOKEN: 'from-the-secret' }));
const portNumber = (port: string | number | undefined): number | undefined => (typeof port === 'number' ? port : container.ports.find((p) => p.name === port)?.containerPort);
const subset = (part: Record<string, string>, whole: Record<string, string>): boolean => Object.entries(part).every(([k, v]) => whole[k] === v);

t.test('every manifest parses and names its kind', async (t) => {
  t.ok(files.length >= 4);
  for (const m of manifests) t.ok(m.apiVersion !== undefined && m.kind !== undefined && m.metadata.name !== '', `${m.kind}/${m.metadata.name}`);
  const kustomization = parse(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
  t.same([...kustomization.resources].sort(), [...files].sort(), 'kustomization.yaml lists every manifest');
});

t.test('the ConfigMap holds a static configuration Meridian loads and routes that validate', async (t) => {
  t.ok(configMount?.readOnly, 'mounted read-only');
  t.equal(config.admin.listen.host, '0.0.0.0', 'admin on every interface, for the kubelet');
  t.equal(config.admin.token, 'from-the-secret', 'its token is the environment\'s');
  t.throws(() => buildStaticConfig(parse(configMap.data?.[configKey(configPath) ?? ''] ?? '') as unknown), 'without the Secret it would not start');
  const routesKey = configKey(config.store.file ?? '');
  t.ok(routesKey !== undefined && configMap.data?.[routesKey] !== undefined, 'store.file is a file of the ConfigMap');
  const { issues } = routingIssues(parse(configMap.data?.[routesKey ?? ''] ?? ''));
  t.same(issues, [], 'routes.yaml passes meridian validate');
});

t.test('the Deployment: replicas, probes on the admin port, token from a Secret, args that start parses', async (t) => {
  t.ok(depSpec.replicas >= 2);
  t.ok(subset(depSpec.selector.matchLabels, depSpec.template.metadata.labels), 'the selector matches the pod labels');
  t.equal(container.args[0], 'start');
  // Kubernetes expands $(POD_NAME) from the container's env before the process starts.
  t.ok(container.env.some((e) => e.name === 'POD_NAME' && e.valueFrom?.fieldRef?.fieldPath === 'metadata.name'));
  const { values } = parseFlags(container.args.slice(1).map((a) => a.replace('$(POD_NAME)', 'meridian-7d9f-abcde')), START_FLAGS, { min: 0, max: 0 });
  t.equal(values.config, configPath);
  t.equal(container.readinessProbe?.httpGet?.path, '/readyz');
  t.equal(container.livenessProbe?.httpGet?.path, '/healthz');
  t.equal(portNumber(container.readinessProbe?.httpGet?.port), config.admin.listen.port, 'readiness probes the configured admin port');
  t.equal(portNumber(container.livenessProbe?.httpGet?.port), config.admin.listen.port, 'liveness too');
  t.equal(portNumber('http'), config.proxy.listen.port, 'the http port is the proxy listener');
  const dnsPorts = container.ports.filter((p) => p.containerPort === config.dns?.listen.port).map((p) => p.protocol);
  t.same(dnsPorts.sort(), ['TCP', 'UDP'], 'GeoDNS on UDP and TCP');
  const token = container.env.find((e) => e.name === 'MERIDIAN_ADMIN_TOKEN');
  t.ok(token?.valueFrom?.secretKeyRef !== undefined, 'the admin token comes from a Secret');
  t.ok(container.resources?.requests?.cpu !== undefined && container.resources.requests.memory !== undefined && container.resources.limits?.memory !== undefined, 'resources');
});

t.test('the pod is locked down and outlives its own drain', async (t) => {
  t.equal(pod.securityContext?.runAsNonRoot, true);
  t.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault');
  t.equal(container.securityContext?.readOnlyRootFilesystem, true);
  t.equal(container.securityContext?.allowPrivilegeEscalation, false);
  t.same(container.securityContext?.capabilities?.drop, ['ALL']);
  for (const listen of [config.proxy.listen, config.admin.listen, ...(config.dns === undefined ? [] : [config.dns.listen])]) t.ok(listen.port >= 1024, `${listen.port} needs no capability`);
  const writable = container.volumeMounts.filter((m) => pod.volumes.find((v) => v.name === m.name)?.emptyDir !== undefined).map((m) => m.mountPath);
  t.ok(writable.some((dir) => config.store.snapshot.startsWith(`${dir}/`)), 'the snapshot is written to a writable volume');
  t.ok(config.proxy.shutdownDelay > 0, 'readyz turns 503 for proxy.shutdownDelay before the listener closes...');
  t.equal(container.lifecycle?.preStop, undefined, '...so no preStop hook');
  t.ok((pod.terminationGracePeriodSeconds ?? 30) * 1000 > config.proxy.shutdownDelay + config.proxy.shutdownTimeout, 'the grace period is longer than the drain');
});

t.test('Service and PodDisruptionBudget select the pods', async (t) => {
  const labels = depSpec.template.metadata.labels;
  const service = one('Service').spec as { selector: Record<string, string>; ports: { targetPort: string | number; protocol: string }[] };
  t.ok(subset(service.selector, labels), 'the Service selects the pods');
  for (const p of service.ports) {
    const target = container.ports.find((c) => (typeof p.targetPort === 'number' ? c.containerPort === p.targetPort : c.name === p.targetPort));
    t.ok(target !== undefined && target.protocol === p.protocol, `Service port ${String(p.targetPort)}/${p.protocol} is a container port`);
  }
  const pdb = one('PodDisruptionBudget').spec as { minAvailable?: number; selector: { matchLabels: Record<string, string> } };
  t.same(pdb.selector.matchLabels, depSpec.selector.matchLabels);
  t.ok((pdb.minAvailable ?? 0) >= 1 && (pdb.minAvailable ?? 0) < depSpec.replicas, 'a drain can proceed yet one pod always serves');
});

// `kubectl create --dry-run=client` needs a cluster's OpenAPI schema; kustomize works offline.
const kubectl = spawnSync('kubectl', ['version', '--client'], { timeout: 10_000 }).status === 0;
t.test('kubectl kustomize builds the manifests offline', { skip: kubectl ? false : 'kubectl is not installed' }, async (t) => {
  const { stdout } = await run('kubectl', ['kustomize', DIR], { timeout: 30_000 });
  const kinds = parseAllDocuments(stdout).map((d) => (d.toJS() as Manifest).kind).sort();
  t.same(kinds, manifests.map((m) => m.kind).sort());
});
