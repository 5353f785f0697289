import type { AddressInfo } from 'node:net';
import { AdminServer } from './admin/server.js';
import { RoutingParser } from './config/routing-parser.js';
import type { StaticConfig } from './config/static-schema.js';
import { DnsServer } from './dns/server.js';
import { Locator } from './geo/locator.js';
import { HealthRegistry } from './health/registry.js';
import { createLogger, type Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { ProxyServer } from './proxy/server.js';
import { servingRuntime } from './proxy/runtime.js';
import { UpstreamRegistry } from './proxy/upstream.js';
import { Lifecycle } from './lifecycle.js';
import { TableApplier } from './store/applier.js';
import { tableSamples } from './routing/table-samples.js';
import { geoDatabasePart } from './geo/attach.js';
import { proxyOptions } from './proxy/options.js';
import { routingSourcePart, sourceOrigin } from './store/routing-source.js';
import { acmePart, acmeRenewer, localChallengeSink } from './acme/part.js';
import type { AcmeRenewer } from './acme/renewer.js';
import { AcmeChallenges } from './proxy/acme-challenges.js';
import { makePlaceholderPem, type PemPair } from './proxy/placeholder-certificate.js';
import { accessLogPart } from './proxy/access-part.js';
import { rolloutPart } from './rollout/part.js';

/** Options of a Meridian instance besides its static configuration. */
export interface StartOptions {
  readonly logger?: Logger;
  /** Export Node's default process metrics (on in production; tests may turn them off). */
  readonly defaultMetrics?: boolean;
}

/** A running Meridian node. */
export interface Meridian {
  readonly config: StaticConfig;
  readonly proxyAddress: AddressInfo;
  readonly adminAddress: AddressInfo;
  /** Where GeoDNS listens (UDP and TCP), null without a dns section. */
  readonly dnsAddress: AddressInfo | null;
  /** Where the TLS listener listens, null without proxy.tls. */
  readonly tlsAddress: AddressInfo | null;
  readonly applier: TableApplier;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Opens the access log file again (SIGUSR1, after logrotate moved it). */
  reopenLogs(): void;
  /** Graceful stop: readyz 503, the proxy serves on for proxy.shutdownDelay, in-flight requests finish (bounded by proxy.shutdownTimeout), listeners close. */
  close(): Promise<void>;
}

/** Starts a Meridian node: routing table, proxy listener, admin listener, file watching. */
export async function startMeridian(config: StaticConfig, options: StartOptions = {}): Promise<Meridian> {
  const logger = options.logger ?? createLogger();
  const metrics = new Metrics({ defaultMetrics: options.defaultMetrics ?? true });
  // Opened first: an unwritable log.access stops the node before anything else starts.
  const access = accessLogPart(config, metrics, logger);
  const upstreams = new UpstreamRegistry({ maxConnections: config.proxy.maxUpstreamConnections, logger });
  const locator = new Locator(config.geo.networks, config.node);
  const origin = sourceOrigin(config);
  const health = new HealthRegistry({ activeChecks: true, logger, metrics });
  // Route hosts may be the ACME names: a new table may bring a name to order.
  let acme: AcmeRenewer | null = null;
  const applier = new TableApplier({ runtime: servingRuntime(upstreams, health), metrics, logger, node: locator.node, snapshotPath: config.store.snapshot, origin, onSwap: () => acme?.check() });
  metrics.table.watch(tableSamples(() => applier.current));
  const parser = new RoutingParser();
  const geo = geoDatabasePart(config.geo.mmdb, locator, logger);
  const source = routingSourcePart(config, applier, { parser, logger, metrics, health });
  const challenges = config.proxy.tls?.acme === undefined ? null : new AcmeChallenges();
  const placeholder: PemPair | null = config.proxy.tls?.certificates.length === 0 ? await makePlaceholderPem() : null;
  const proxyConfig = proxyOptions(config, { tables: applier, locator, metrics, logger }, challenges === null ? null : { challenges, placeholder });
  const rollouts = rolloutPart(config, metrics, logger);
  const proxy = new ProxyServer({ ...proxyConfig, accessLog: access.log, ...(rollouts === null || rollouts.recorder === null ? {} : { outcomes: rollouts.recorder }) });
  const certificates = proxyConfig.tls?.certificates;
  acme =
    challenges === null || certificates === undefined
      ? null
      : acmeRenewer(config, { table: () => applier.current, sink: localChallengeSink(challenges), install: (name, cert) => certificates.setIssued(name, cert), metrics, logger });
  const dns = config.dns === undefined ? null : new DnsServer(config.dns, { tables: applier, health, locator, metrics, logger });
  const admin = new AdminServer({ listen: config.admin.listen, token: config.admin.token, protectMetrics: config.admin.protectMetrics, config, applier, metrics, logger, isDraining: () => proxy.draining, reload: () => source.reload(),
    storeState: () => source.state(),
    partsState: () => ({ ...(rollouts === null ? {} : { rollouts: rollouts.state() }), ...(dns === null ? {} : { dns: dns.state() }), ...(geo.state() === null ? {} : { geo: geo.state() }), ...(config.proxy.tls === undefined ? {} : { tls: { ...proxy.tlsState(), ...(acme === null ? {} : { acme: acme.state() }) } }) }),
    partErrors: () => [...proxy.tlsProblems(), ...(acme?.problems() ?? []), ...(rollouts?.errors() ?? [])],
  });
  const bound: { proxy?: AddressInfo; admin?: AddressInfo; dns?: AddressInfo; tls?: AddressInfo | null } = {};
  const { shutdownDelay: delayMs, shutdownTimeout: timeoutMs } = config.proxy;

  // Started in this order, stopped in reverse: on SIGTERM the proxy drains first (through
  // proxy.shutdownDelay, on the table in force) while GeoDNS, the routing source and admin
  // (readyz 503) still run; the applier and the parser go last.
  const lifecycle = new Lifecycle(logger);
  await lifecycle.start([
    // Stopped last: lines of requests that finish while the proxy drains are written too.
    access,
    geo,
    { name: 'routing parser', start: () => undefined, stop: () => parser.close() },
    { name: 'table applier', start: () => undefined, stop: () => applier.flush() },
    {
      name: 'admin listener',
      async start() {
        bound.admin = await admin.listen();
      },
      stop: () => admin.close(),
    },
    { name: 'upstream pools', start: () => undefined, stop: () => upstreams.closeAll(true) },
    { name: 'health checks', start: () => undefined, stop: () => health.close() },
    { name: 'TLS ticket keys', start: () => proxyConfig.tls?.ticketKeys.startRotating(), stop: () => proxyConfig.tls?.ticketKeys.stop() },
    source,
    { name: 'rollouts', start: () => rollouts?.start(), stop: () => rollouts?.stop() },
    {
      name: 'GeoDNS listener',
      async start() {
        if (dns !== null) bound.dns = await dns.listen();
      },
      stop: () => dns?.close(),
    },
    {
      name: 'proxy listener',
      async start() {
        const listening = await proxy.listen();
        bound.proxy = listening.plain;
        bound.tls = listening.tls;
      },
      async stop() {
        logger.info({ inFlight: proxy.inFlight, delayMs, timeoutMs }, 'shutting down: draining requests in flight');
        await proxy.close(timeoutMs, delayMs);
      },
    },
    acmePart(acme),
  ]);
  const { proxy: proxyAddress, admin: adminAddress, dns: dnsAddress = null, tls: tlsAddress = null } = bound;
  if (proxyAddress === undefined || adminAddress === undefined) throw new Error('the listeners started without an address');
  logger.info({ proxy: proxyAddress, ...(tlsAddress === null ? {} : { tls: tlsAddress }), admin: adminAddress, node: config.node.name, store: origin }, 'meridian started');

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= lifecycle.stop().then(() => logger.info('meridian stopped'));
    return closing;
  };
  return { config, proxyAddress, adminAddress, dnsAddress, tlsAddress, applier, metrics, logger, reopenLogs: () => access.reopen(), close };
}
