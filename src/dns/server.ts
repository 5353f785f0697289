import type { AddressInfo } from 'node:net';
import type { StaticConfig } from '../config/static-schema.js';
import type { Locator } from '../geo/locator.js';
import type { PortSharing } from '../net/address.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Freshness } from './answer-cache.js';
import { Authority, type TableSource } from './authority.js';
import type { Answerer } from './answerer.js';
import { DnsMetrics } from './dns-metrics.js';
import { Forwarder } from './forwarder.js';
import { Responder } from './responder.js';
import { TcpListener } from './tcp.js';
import { UdpListener } from './udp.js';
import { ZoneSet } from './zones.js';
import { assemble } from './wire.js';
import { RCODE_SERVFAIL } from './rcodes.js';

type DnsConfig = NonNullable<StaticConfig['dns']>;

/** Queries one TCP connection may have in flight (forwarded) before its reading pauses. */
const MAX_PENDING_PER_CONNECTION = 64;
/** Attempts at finding a port free for both UDP and TCP when the configured port is 0. */
const BIND_ATTEMPTS = 5;

/**
 * The GeoDNS server: UDP and TCP listeners on one address, answering from the
 * routing table in force through the same steering the proxy uses.
 */
export class DnsServer {
  readonly #config: DnsConfig;
  readonly #logger: Logger;
  readonly #metrics: DnsMetrics;
  readonly #forwarder: Forwarder | null;
  readonly #answer: Answerer;
  readonly #zones: ZoneSet;
  readonly #responder: Responder;
  #udp: UdpListener | null = null;
  #tcp: TcpListener | null = null;
  #address: AddressInfo | null = null;

  readonly #sharing: PortSharing;

  constructor(config: DnsConfig, deps: { tables: TableSource; health: { readonly generation: number }; locator: Locator; metrics: Metrics; logger: Logger; sharing?: PortSharing }) {
    this.#config = config;
    this.#sharing = deps.sharing ?? 'own';
    this.#logger = deps.logger;
    this.#metrics = new DnsMetrics(deps.metrics);
    this.#zones = new ZoneSet(config.zones);
    this.#forwarder = config.forwarders.length === 0 ? null : new Forwarder(config.forwarders, this.#metrics, deps.logger);
    const authority = new Authority(this.#zones, deps.tables, deps.locator, config.ttl);
    const freshness = (): Freshness => ({ table: deps.tables.current, healthGeneration: deps.health.generation });
    const responder = new Responder(authority, this.#forwarder, this.#metrics, deps.logger, freshness);
    this.#responder = responder;
    // A bug must cost one answer, never the listener: SERVFAIL with the query's id.
    const failed = (query: Buffer, err: Error): Buffer | null => {
      deps.logger.error({ err: err.message, stack: err.stack }, 'dns answer failed');
      return query.length >= 12 ? assemble(query.readUInt16BE(0), RCODE_SERVFAIL, null) : null;
    };
    this.#answer = (query, peer, transport) => {
      try {
        const out = responder.respond(query, peer, transport);
        return out instanceof Promise ? out.catch((err: Error) => failed(query, err)) : out;
      } catch (err) {
        return failed(query, err as Error);
      }
    };
  }

  /** Binds UDP and TCP on the configured address (one port for both); resolves with it. */
  async listen(): Promise<AddressInfo> {
    const { host, port } = this.#config.listen;
    for (let attempt = 1; ; attempt++) {
      const udp = new UdpListener(host, this.#answer, this.#logger, this.#sharing);
      const bound = await udp.listen(host, port);
      const tcp = new TcpListener(
        this.#answer,
        { maxConnections: this.#config.maxTcpConnections, idleTimeoutMs: this.#config.tcpIdleTimeout, maxPendingPerConnection: MAX_PENDING_PER_CONNECTION },
        this.#logger,
      );
      try {
        await tcp.listen(host, bound.port, this.#sharing);
      } catch (err) {
        await udp.close();
        if (port !== 0 || attempt >= BIND_ATTEMPTS) throw err;
        continue;
      }
      this.#udp = udp;
      this.#tcp = tcp;
      this.#address = bound;
      this.#logger.info({ address: bound, zones: this.#zones.list().map((z) => z.name), forwarders: this.#config.forwarders.length }, 'dns listening');
      for (const warning of this.#zones.warnings) this.#logger.warn({ section: 'dns.zones' }, warning);
      return bound;
    }
  }

  /** The server as the admin state shows it. */
  state(): Record<string, unknown> {
    return {
      listen: this.#address,
      zones: this.#zones.list().map((z) => z.name),
      warnings: this.#zones.warnings,
      ttlMs: this.#config.ttl,
      forwarders: this.#config.forwarders.map((f) => `${f.host}:${f.port}`),
      cacheEntries: this.#forwarder?.cacheSize ?? 0,
      answersCached: this.#responder.cacheSize,
      tcpConnections: this.#tcp?.connections ?? 0,
      ...this.#metrics.totals,
    };
  }

  /** Stops both listeners and the forwarder. */
  async close(): Promise<void> {
    await Promise.all([this.#udp?.close(), this.#tcp?.close()]);
    this.#forwarder?.close();
  }
}
