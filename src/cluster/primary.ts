import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { AdminServer } from '../admin/server.js';
import { RoutingParser } from '../config/routing-parser.js';
import { encodeDocument } from '../config/routing-lines.js';
import { reusePortSupported, type StaticConfig } from '../config/static-schema.js';
import { Locator } from '../geo/locator.js';
import { recordFailure, recordSuccess } from '../health/passive.js';
import { HealthRegistry } from '../health/registry.js';
import { Lifecycle } from '../lifecycle.js';
import type { Meridian } from '../main.js';
import type { Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { aggregateNode } from '../observability/node-metrics.js';
import type { Registry } from 'prom-client';
import type { RoutingTable } from '../routing/table.js';
import { tableSamples } from '../routing/table-samples.js';
import { TableApplier, type StoreSnapshot } from '../store/applier.js';
import type { PassiveMessage, RolloutsMessage, TableMessage, ToWorker } from './messages.js';
import { controlRuntime } from './control-runtime.js';
import { WorkerPool } from './workers.js';
import { tlsOptions } from '../proxy/options.js';
import { tlsState } from '../proxy/server.js';
import { routingSourcePart, sourceOrigin } from '../store/routing-source.js';
import { acmePart, acmeRenewer } from '../acme/part.js';
import type { AcmeRenewer } from '../acme/renewer.js';
import { makePlaceholderPem } from '../proxy/placeholder-certificate.js';
import { AcmeRelay } from './acme-relay.js';
import { checkAccessLog } from '../proxy/access-part.js';
import { rolloutPart } from '../rollout/part.js';
import type { StepReport } from '../rollout/step-stats.js';

/** How many data-plane workers a configuration asks for. */
export function workerCount(config: StaticConfig): number {
  return config.proxy.workers === 'auto' ? availableParallelism() : config.proxy.workers;
}

/** How a node's workers share the listening ports: SO_REUSEPORT where the runtime can, else through the primary. */
export function portSharing(config: StaticConfig): 'shared' | 'reuseport' {
  const wanted = config.proxy.reusePort;
  return wanted === true || (wanted === 'auto' && reusePortSupported()) ? 'reuseport' : 'shared';
}

/** The endpoint a worker's passive signal is about, in the primary's table; undefined when that table no longer has it. */
function endpointOf(table: RoutingTable | null, message: PassiveMessage) {
  const version = table?.services.get(message.service)?.versions.get(message.version);
  return version?.groups.find((g) => g.region.name === message.region)?.all.find((ep) => ep.key === message.key);
}

/**
 * A node's primary process: the control plane. It owns the routing source,
 * validation, the last-good snapshot, the active health checks (once per node,
 * however many workers), fleet publishing and the admin API; it hands every
 * table it applies, and every health change, to the workers, judges the
 * passive-health signals they send, and aggregates their metrics. The workers
 * own the proxy and GeoDNS listeners (cluster/worker.ts).
 */
export async function startPrimary(config: StaticConfig, logger: Logger, sharing: 'shared' | 'reuseport'): Promise<Meridian> {
  const metrics = new Metrics({ defaultMetrics: true });
  // Each worker opens log.access itself; a path none of them could open stops the node here, before any is forked.
  await checkAccessLog(config, metrics, logger);
  const locator = new Locator(config.geo.networks, config.node);
  const origin = sourceOrigin(config);
  const health = new HealthRegistry({ activeChecks: true, logger, metrics });
  let pool: WorkerPool | null = null;
  let latest: TableMessage | null = null;
  const broadcastTable = (table: RoutingTable, snapshot: StoreSnapshot): void => {
    latest = {
      type: 'table',
      source: table.source,
      revision: table.revision,
      stale: snapshot.stale ?? false,
      heldBack: snapshot.heldBack ?? [],
      encoded: encodeDocument(snapshot.doc),
      health: health.views(),
    };
    pool?.broadcast(latest);
  };
  let acme: AcmeRenewer | null = null;
  const applier = new TableApplier({
    runtime: controlRuntime(health),
    metrics,
    logger,
    node: locator.node,
    snapshotPath: config.store.snapshot,
    origin,
    onSwap: (table, snapshot) => {
      broadcastTable(table, snapshot);
      acme?.check();
    },
  });
  // The control plane holds the health the workers mirror: endpoint and weight gauges come from here alone.
  metrics.table.watch(tableSamples(() => applier.current));
  health.onChange((changed) => pool?.broadcast({ type: 'health', views: [changed.view()] } satisfies ToWorker));
  const parser = new RoutingParser();
  // Read here too: a node does not start on an unusable certificate, and the state shows what the workers serve.
  const tls = tlsOptions(config, null, logger, config.proxy.tls?.certificates.length === 0 ? await makePlaceholderPem() : null);
  tls?.ticketKeys.onChange((keys) => pool?.broadcast({ type: 'ticket-keys', keys } satisfies ToWorker));
  // The primary orders; the workers answer the challenges and serve what it issues.
  const relay = new AcmeRelay(() => pool);
  acme =
    tls === undefined
      ? null
      : acmeRenewer(config, {
          table: () => applier.current,
          sink: relay,
          install(name, cert) {
            tls.certificates.setIssued(name, cert);
            relay.certificate(name, cert.pem);
          },
          metrics,
          logger,
        });
  const source = routingSourcePart(config, applier, { parser, logger, metrics, health });
  // Rollouts: the workers count, the primary publishes their reports and (when it leads) judges.
  const workerReports = new Map<number, readonly StepReport[]>();
  let rolloutsMessage: RolloutsMessage | null = null;
  const rollouts = rolloutPart(config, metrics, logger, {
    reports: () => [...workerReports.values()].flat(),
    follow(specs) {
      rolloutsMessage = { type: 'rollouts', rollouts: [...specs] };
      workers.broadcast(rolloutsMessage);
    },
  });
  let draining = false;
  // /metrics and the traffic document read the same aggregate, so they agree.
  const aggregatedMetrics = async (): Promise<Registry> => aggregateNode(await metrics.registry.getMetricsAsJSON(), pool === null ? [] : await pool.metrics());
  const admin = new AdminServer({
    listen: config.admin.listen,
    token: config.admin.token,
    protectMetrics: config.admin.protectMetrics,
    config,
    applier,
    metrics,
    logger,
    isDraining: () => draining,
    notReady: () => (pool === null || pool.listening === 0 ? 'no worker is serving' : null),
    metricsText: async () => (await aggregatedMetrics()).metrics(),
    metricsJson: async () => (await aggregatedMetrics()).getMetricsAsJSON(),
    reload: () => source.reload(),
    storeState: () => source.state(),
    partsState: () => ({ workers: pool?.state() ?? [], ...(rollouts === null ? {} : { rollouts: rollouts.state() }), ...(tls === undefined ? {} : { tls: { ...tlsState(tls), ...(acme === null ? {} : { acme: acme.state() }) } }) }),
    partErrors: () => [...(tls?.certificates.problems() ?? []), ...(acme?.problems() ?? []), ...(rollouts?.errors() ?? [])],
  });
  const workers = new WorkerPool({
    count: workerCount(config),
    proxyPort: config.proxy.listen.port,
    dnsPort: config.dns?.listen.port ?? null,
    tlsPort: config.proxy.tls?.listen.port ?? null,
    ticketKeys: () => tls?.ticketKeys.current ?? null,
    ownSockets: sharing === 'reuseport',
    logger,
    // The health now, not as it was at the swap: flips since then were broadcast before this worker could hear them.
    initial: () => [...relay.messages(), ...(latest === null ? [] : [{ ...latest, health: health.views() }]), ...(rolloutsMessage === null ? [] : [rolloutsMessage])],
    onMessage(worker, message) {
      if (message.type === 'rollout-reports') {
        workerReports.set(worker.id, message.reports);
        return;
      }
      if (message.type !== 'passive') return;
      const ep = endpointOf(applier.current, message);
      if (ep === undefined) return;
      if (message.signal === 'success') recordSuccess(ep);
      else recordFailure(ep, message.signal);
    },
  });
  const bound: { admin?: AddressInfo; proxy?: AddressInfo; dns?: AddressInfo | null; tls?: AddressInfo | null } = {};
  const { shutdownDelay: delayMs, shutdownTimeout: timeoutMs } = config.proxy;
  const lifecycle = new Lifecycle(logger);
  await lifecycle.start([
    { name: 'routing parser', start: () => undefined, stop: () => parser.close() },
    { name: 'table applier', start: () => undefined, stop: () => applier.flush() },
    {
      name: 'admin listener',
      async start() {
        bound.admin = await admin.listen();
      },
      stop: () => admin.close(),
    },
    { name: 'health checks', start: () => undefined, stop: () => health.close() },
    { name: 'certificate files', start: () => tls?.certificates.watch(), stop: () => tls?.certificates.close() },
    { name: 'TLS ticket keys', start: () => tls?.ticketKeys.startRotating(), stop: () => tls?.ticketKeys.stop() },
    source,
    { name: 'rollouts', start: () => rollouts?.start(), stop: () => rollouts?.stop() },
    {
      name: 'workers',
      async start() {
        pool = workers;
        const listening = await workers.start();
        bound.proxy = listening.proxy;
        bound.dns = listening.dns;
        bound.tls = listening.tls;
      },
      async stop() {
        logger.info({ workers: workers.listening, delayMs, timeoutMs }, 'shutting down: draining the workers');
        await workers.drain(delayMs, timeoutMs);
      },
    },
    acmePart(acme),
  ]);
  const { admin: adminAddress, proxy: proxyAddress, dns: dnsAddress = null, tls: tlsAddress = null } = bound;
  if (adminAddress === undefined || proxyAddress === undefined) throw new Error('the listeners started without an address');
  logger.info({ proxy: proxyAddress, ...(tlsAddress === null ? {} : { tls: tlsAddress }), admin: adminAddress, node: config.node.name, store: origin, workers: workers.listening, sharing }, 'meridian started');

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    draining = true;
    closing ??= lifecycle.stop().then(() => logger.info('meridian stopped'));
    return closing;
  };
  const reopenLogs = (): void => workers.broadcast({ type: 'reopen-logs' } satisfies ToWorker);
  return { config, proxyAddress, adminAddress, dnsAddress, tlsAddress, applier, metrics, logger, reopenLogs, close };
}
