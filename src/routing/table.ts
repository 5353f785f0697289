import type { UpstreamTarget, UpstreamTls } from '../net/upstream-tls.js';
import type { ConfigIssue } from '../config/issues.js';
import type { RegionSpec, RouteSpec, ServiceSpec } from '../config/routing-schema.js';
import type { Dispatcher } from 'undici';
import type { Location } from '../geo/distance.js';
import type { Origin } from '../geo/origin.js';
import type { EndpointHealth, OutlierSpec } from '../health/endpoint-health.js';
import type { RequestSeries } from '../observability/metrics.js';
import type { VersionSplit } from './split.js';

/**
 * What routing and the data plane use of an upstream address (the data plane
 * provides it): the live load, the measured latency, and where requests go.
 */
export interface UpstreamLink {
  /** Requests sent here and not yet finished. */
  outstanding: number;
  /** Moving average of the time to response headers, in ms; NaN until measured. */
  latencyMs: number;
  /** The connection pool requests are dispatched through. */
  readonly pool: Dispatcher;
  /** Folds one time-to-headers sample into the moving average. */
  recordLatency(ms: number): void;
}

/** Orders the regions of one version for a request: most preferred first (built by steering.ts). */
export interface RegionSteering {
  readonly kind: 'nearest' | 'latency' | 'failover' | 'weighted';
  /** Whether candidates() uses the origin (so callers can skip locating the client). */
  readonly usesOrigin: boolean;
  /** Region groups in preference order; the returned array is shared: do not mutate. */
  candidates(origin: Origin): readonly RegionGroup[];
}

/** Finds the route of a request or of a DNS name (built by matcher.ts). */
export interface RouteLookup {
  /** The route for a Host header and request target, or null. */
  match(hostHeader: string | undefined, url: string): Route | null;
  /** The route a DNS name (lowercase, no trailing dot) is answered for, or null. */
  routeForHost(host: string): Route | null;
  /** Whether some route host lies below the name (so the name exists in DNS, without records of its own). */
  hasHostsBelow(name: string): boolean;
}

/** Where a routing table came from. */
export type TableSource = 'file' | 'etcd' | 'snapshot';

/** A region as compiled: immutable. */
export interface Region {
  readonly name: string;
  /** Declaration order: the last-resort steering order. */
  readonly index: number;
  /** The validated object it was compiled from: a table built from the same one can reuse it. */
  readonly spec: RegionSpec;
  readonly location: Location;
  readonly countries: readonly string[];
  readonly drain: boolean;
  /** What GeoDNS answers: addresses per family, and the name to alias to (CNAME) for a family without any; null: none. */
  readonly edge: { readonly ipv4: readonly string[]; readonly ipv6: readonly string[]; readonly cname: string | null };
}

/** One endpoint of one version of a service in one region. */
export interface Endpoint {
  /** `host:port`, or `https://host:port` when spoken to with TLS. */
  readonly key: string;
  /** Address and TLS settings: what a connection to the endpoint is made with. */
  readonly address: UpstreamTarget;
  /** TLS settings (its own, its version's, or the defaults of `https://`); null: plaintext. */
  readonly tls: UpstreamTls | null;
  readonly weight: number;
  /** Drained here or by its region: takes no new requests. */
  readonly drain: boolean;
  readonly region: Region;
  readonly service: string;
  readonly version: string;
  /** `version\u0000region`: the key of this endpoint's metric series within a route. */
  readonly seriesKey: string;
  /** Pool and live load, shared by address. */
  readonly upstream: UpstreamLink;
  /** Health, shared by address and check settings. */
  readonly health: EndpointHealth;
  /** Requests this node may have in flight here for this service (Infinity: no limit). */
  readonly maxConcurrent: number;
  /** Passive-ejection settings of this endpoint's service. */
  readonly outlier: OutlierSpec;
  /** Every endpoint of the same version and region, this one included: the unit the ejection cap counts. */
  readonly peers: readonly Endpoint[];
}

/** The endpoints of one version of a service in one region: the unit steering chooses. */
export interface RegionGroup {
  readonly region: Region;
  /** Endpoints that may take new requests (drained ones are left out). */
  readonly endpoints: readonly Endpoint[];
  /** Every endpoint, drained or not, for the admin view. */
  readonly all: readonly Endpoint[];
  /** Running sums of endpoint weights, for weighted random picks. */
  readonly cumulativeWeights: Float64Array;
}

/** One version of a service (e.g. `stable`, `canary`). */
export interface Version {
  readonly name: string;
  readonly service: string;
  readonly weight: number;
  readonly groups: readonly RegionGroup[];
  readonly steering: RegionSteering;
  /**
   * Other versions, heaviest first, tried when this one has no endpoint that can
   * take a request: serving another version beats failing the request.
   */
  readonly fallbacks: readonly Version[];
}

/** A service: where and how requests for it are sent. */
export interface Service {
  readonly name: string;
  readonly spec: ServiceSpec;
  readonly split: VersionSplit<Version>;
  readonly versions: ReadonlyMap<string, Version>;
  readonly connectTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /** Extra tries after the first. */
  readonly retryAttempts: number;
  /** The service's retry budget as this process applies it (its share of `minConcurrent` when the node has workers). */
  readonly retryBudget: { readonly percent: number; readonly minConcurrent: number };
  /** Bound on each try's wait for response headers; the request timeout when not set. */
  readonly perTryTimeoutMs: number;
  readonly failWhenAllDown: boolean;
}

/** A route: hosts and a path prefix mapped to a service. */
export interface Route {
  readonly name: string;
  readonly spec: RouteSpec;
  readonly service: Service;
  /** Metric series of this route by endpoint `seriesKey`, filled on first use. */
  readonly series: Map<string, RequestSeries>;
}

/**
 * An immutable, compiled routing table. A new one is built beside the one in
 * force and swapped in with one assignment; requests in flight keep theirs.
 */
export interface RoutingTable {
  readonly revision: number;
  readonly source: TableSource;
  readonly regions: ReadonlyMap<string, Region>;
  readonly services: ReadonlyMap<string, Service>;
  readonly routes: ReadonlyMap<string, Route>;
  readonly matcher: RouteLookup;
  /** Problems with objects that were left out of this table. */
  readonly issues: readonly ConfigIssue[];
}
