import type { StaticConfig } from '../config/static-schema.js';
import type { Locator } from '../geo/locator.js';
import { PrefixMap } from '../net/prefix-map.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { CertificateSet } from './certificate-set.js';
import { TicketKeys } from './ticket-keys.js';
import type { TableReader } from './resolve.js';
import type { ProxyOptions, ProxyTlsOptions } from './server.js';
import type { AcmeChallenges } from './acme-challenges.js';
import type { PemPair } from './placeholder-certificate.js';

/** The Strict-Transport-Security value for a configured `hsts` block. */
function hstsValue(hsts: NonNullable<NonNullable<StaticConfig['proxy']['tls']>['hsts']>): string {
  return `max-age=${Math.floor(hsts.maxAge / 1000)}${hsts.includeSubDomains ? '; includeSubDomains' : ''}${hsts.preload ? '; preload' : ''}`;
}

/**
 * The TLS listener's settings with its certificates read (throws a ConfigError
 * naming each unusable one); reloads counted in `metrics` when given;
 * `placeholder` served while no file is configured and ACME has issued nothing.
 */
export function tlsOptions(config: StaticConfig, metrics: Metrics | null, logger: Logger, placeholder: PemPair | null = null): ProxyTlsOptions | undefined {
  const tls = config.proxy.tls;
  if (tls === undefined) return undefined;
  return { listen: tls.listen, certificates: new CertificateSet(tls, logger, metrics, placeholder), ticketKeys: new TicketKeys(tls.ticketKeyRotation), minVersion: tls.minVersion, hsts: tls.hsts === undefined ? null : hstsValue(tls.hsts) };
}

/** The proxy listener's settings from the static configuration, with the collaborators every node gives it. */
export function proxyOptions(config: StaticConfig, deps: { tables: TableReader; locator: Locator; metrics: Metrics; logger: Logger }, acme: { challenges: AcmeChallenges; placeholder: PemPair | null } | null = null): ProxyOptions {
  const trustedProxies = new PrefixMap<true>();
  for (const cidr of config.proxy.trustedProxies) trustedProxies.add(cidr, true);
  return {
    listen: config.proxy.listen,
    nodeName: config.node.name,
    trustedProxies,
    debugHeaders: config.proxy.debugHeaders,
    headersTimeoutMs: config.proxy.headersTimeout,
    requestTimeoutMs: config.proxy.requestTimeout,
    keepAliveTimeoutMs: config.proxy.keepAliveTimeout,
    maxHeaders: config.proxy.maxHeaders,
    maxConnections: config.proxy.maxConnections ?? 0,
    escapedSlashes: config.proxy.escapedSlashes,
    tls: tlsOptions(config, deps.metrics, deps.logger, acme?.placeholder ?? null),
    ...(acme === null ? {} : { acme: acme.challenges }),
    h2c: config.proxy.h2c,
    ...deps,
  };
}
