import type { StaticConfig } from '../config/static-schema.js';
import type { Locator } from '../geo/locator.js';
import { PrefixMap } from '../net/prefix-map.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { TableReader } from './resolve.js';
import type { ProxyOptions } from './server.js';

/** The proxy listener's settings from the static configuration, with the collaborators every node gives it. */
export function proxyOptions(config: StaticConfig, deps: { tables: TableReader; locator: Locator; metrics: Metrics; logger: Logger }): ProxyOptions {
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
    ...deps,
  };
}
