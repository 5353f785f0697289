import type { AddressInfo } from 'node:net';
import { DocumentDecoder } from '../config/routing-lines.js';
import type { StaticConfig } from '../config/static-schema.js';
import { DnsServer } from '../dns/server.js';
import { Locator } from '../geo/locator.js';
import { HealthRegistry } from '../health/registry.js';
import { Lifecycle } from '../lifecycle.js';
import type { PortSharing } from '../net/address.js';
import type { PassiveSignal } from '../net/failures.js';
import type { Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import type { PassiveSink } from '../proxy/passive-sink.js';
import { servingRuntime } from '../proxy/runtime.js';
import { ProxyServer } from '../proxy/server.js';
import { UpstreamRegistry } from '../proxy/upstream.js';
import { share } from '../routing/compile.js';
import type { Endpoint } from '../routing/table.js';
import { TableApplier } from '../store/applier.js';
import { isProtocolMessage, type AcmeChange, type ToPrimary, type ToWorker } from './messages.js';
import { geoDatabasePart } from '../geo/attach.js';
import { proxyOptions } from '../proxy/options.js';
import { AcmeChallenges } from '../proxy/acme-challenges.js';
import { CertificateError, certificateFromPem } from '../proxy/certificates.js';
import { makePlaceholderPem } from '../proxy/placeholder-certificate.js';
import { accessLogPart } from '../proxy/access-part.js';
import { RolloutRecorder } from '../rollout/recorder.js';
import { ROLLOUT_INTERVAL_MS } from '../rollout/node-part.js';

/** The worker's end of the IPC channel. */
function send(message: ToPrimary): void {
  process.send?.(message);
}

/**
 * In a worker, passive-health signals go to the primary, which judges them for
 * the whole node and tells every worker the outcome. A 5xx run is counted here
 * too, so that the success ending it is reported (and nothing else is).
 */
const REMOTE_PASSIVE: PassiveSink = {
  failure(ep: Endpoint, signal: PassiveSignal) {
    if (signal === 'status-5xx') ep.health.consecutive5xx++;
    send({ type: 'passive', service: ep.service, version: ep.version, region: ep.region.name, key: ep.key, signal });
  },
  success(ep: Endpoint) {
    ep.health.consecutive5xx = 0;
    send({ type: 'passive', service: ep.service, version: ep.version, region: ep.region.name, key: ep.key, signal: 'success' });
  },
};

/**
 * A data-plane worker of a node: the proxy and GeoDNS listeners, serving the
 * tables the primary validated (compiled and swapped here, so a worker never
 * waits on the primary for a request) with the health the primary decides.
 * It checks nothing itself and exits when the primary tells it to drain, or
 * when the primary is gone.
 */
export async function runWorker(config: StaticConfig, logger: Logger, sharing: PortSharing, worker: number, processes: number): Promise<void> {
  const metrics = new Metrics({ defaultMetrics: true });
  const access = accessLogPart(config, metrics, logger);
  // A worker gets the signal too when it is sent to the process group; without a listener Node would open its inspector.
  process.on('SIGUSR1', () => access.reopen());
  const locator = new Locator(config.geo.networks, config.node);
  const upstreams = new UpstreamRegistry({ maxConnections: share(config.proxy.maxUpstreamConnections, processes), logger });
  const health = new HealthRegistry({ activeChecks: false, mirror: true, logger, metrics });
  const applier = new TableApplier({ runtime: servingRuntime(upstreams, health), metrics, logger, node: locator.node, snapshotPath: null, origin: 'primary', processes });
  const decoder = new DocumentDecoder();
  const tls = config.proxy.tls;
  const challenges = tls?.acme === undefined ? null : new AcmeChallenges();
  const placeholder = tls?.certificates.length === 0 ? await makePlaceholderPem() : null;
  const options = proxyOptions(config, { tables: applier, locator, metrics, logger }, challenges === null ? null : { challenges, placeholder });
  // Counts of the running rollouts' steps, sent to the primary once a second (etcd mode only: rollouts live in etcd).
  const rollouts = config.store.etcd === undefined ? null : new RolloutRecorder();
  const proxy = new ProxyServer({ ...options, sharing, worker, passive: REMOTE_PASSIVE, accessLog: access.log, ...(rollouts === null ? {} : { outcomes: rollouts }) });
  const reporting = setInterval(() => {
    const reports = rollouts?.reports(`${config.node.name}.w${worker}`) ?? [];
    if (reports.length > 0) send({ type: 'rollout-reports', reports });
  }, ROLLOUT_INTERVAL_MS);
  reporting.unref();
  /** Applies what the primary's ACME orders say: a challenge to answer, or a certificate to serve. */
  const acme = (change: AcmeChange): void => {
    if (change.kind === 'http') challenges?.setHttp(change.token, change.keyAuthorization);
    else if (change.kind === 'alpn') challenges?.setAlpn(change.name, change.pem);
    else if (options.tls !== undefined) {
      try {
        options.tls.certificates.setIssued(change.name, certificateFromPem({ cert: `acme:${change.name}`, key: `acme:${change.name}` }, change.cert, change.key, options.tls.minVersion));
      } catch (err) {
        if (!(err instanceof CertificateError)) throw err;
        logger.error({ name: change.name, err: err.message }, 'ACME certificate from the primary cannot be served; the one before stays');
      }
    }
  };
  let drain = { delayMs: 0, timeoutMs: config.proxy.shutdownTimeout };
  const lifecycle = new Lifecycle(logger);
  const listen = async (message: Extract<ToWorker, { type: 'listen' }>): Promise<void> => {
    const bound: { proxy?: AddressInfo; dns?: AddressInfo; tls?: AddressInfo | null } = {};
    if (message.ticketKeys !== null) proxy.setTicketKeys(Buffer.from(message.ticketKeys));
    const dns = config.dns === undefined ? null : new DnsServer({ ...config.dns, listen: { host: config.dns.listen.host, port: message.dnsPort ?? 0 } }, { tables: applier, health, locator, metrics, logger, sharing });
    await lifecycle.start([
      access,
      geoDatabasePart(config.geo.mmdb, locator, logger),
      { name: 'table applier', start: () => undefined, stop: () => applier.flush() },
      { name: 'upstream pools', start: () => undefined, stop: () => upstreams.closeAll(true) },
      { name: 'health records', start: () => undefined, stop: () => health.close() },
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
          const listening = await proxy.listen({ plain: message.proxyPort, tls: message.tlsPort ?? undefined });
          bound.proxy = listening.plain;
          bound.tls = listening.tls;
        },
        stop: () => proxy.close(drain.timeoutMs, drain.delayMs),
      },
    ]);
    send({ type: 'listening', proxy: bound.proxy as AddressInfo, dns: bound.dns ?? null, tls: bound.tls ?? null });
  };
  const handle = async (message: ToWorker): Promise<void> => {
    switch (message.type) {
      case 'table': {
        const doc = await decoder.decode(message.encoded);
        const encoded = message.encoded;
        const outcome = await applier.apply({ source: message.source, doc, rawJson: () => encoded, revision: message.revision, stale: message.stale, heldBack: message.heldBack });
        health.applyViews(message.health);
        if (outcome.result !== 'superseded') send({ type: 'applied', revision: message.revision, appliedAt: applier.appliedAt?.getTime() ?? Date.now() });
        return;
      }
      case 'health':
        health.applyViews(message.views);
        return;
      case 'listen':
        return listen(message);
      case 'ticket-keys':
        proxy.setTicketKeys(Buffer.from(message.keys));
        return;
      case 'rollouts':
        rollouts?.track(new Map(message.rollouts));
        return;
      case 'reopen-logs':
        access.reopen();
        return;
      case 'metrics':
        send({ type: 'metrics', id: message.id, metrics: await metrics.registry.getMetricsAsJSON() });
        return;
      case 'acme':
        acme(message.change);
        if (message.id !== 0) send({ type: 'acme-applied', id: message.id });
        return;
      case 'drain':
        drain = { delayMs: message.delayMs, timeoutMs: message.timeoutMs };
        await lifecycle.stop();
        process.exit(0);
    }
  };
  // Messages are handled one at a time, in order: a table is in force before the listener opens.
  let queue: Promise<void> = Promise.resolve();
  process.on('message', (message: unknown) => {
    if (!isProtocolMessage<ToWorker>(message)) return;
    // Metrics and ACME challenges are answered at once: they must not wait behind a large table.
    if (message.type === 'metrics' || message.type === 'acme' || message.type === 'reopen-logs') {
      void handle(message);
      return;
    }
    queue = queue.then(() => handle(message)).catch((err: Error) => logger.error({ err: err.message, stack: err.stack, message: message.type }, 'worker could not handle a message from the primary'));
  });
  // The primary coordinates every stop; a worker left alone stops serving at once.
  process.on('disconnect', () => void lifecycle.stop().then(() => process.exit(1)));
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => undefined);
  send({ type: 'ready' });
}
