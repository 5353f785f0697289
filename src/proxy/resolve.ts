import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { clientAddress, plainAddress, type ClientAddress } from '../geo/client-address.js';
import type { Locator } from '../geo/locator.js';
import type { Origin } from '../geo/origin.js';
import { parseIp } from '../net/ip.js';
import type { PrefixMap } from '../net/prefix-map.js';
import type { Metrics, RequestSeries } from '../observability/metrics.js';
import { selectEndpoint } from '../routing/select.js';
import type { Endpoint, Route, RoutingTable, Version } from '../routing/table.js';
import type { DownstreamRequest } from './downstream.js';
import { ERRORS, type ProxyError } from './errors.js';
import { keepsRequestId, restoreHeld, setHeader, type RequestHead } from './headers.js';
import { needsNormalising, normalisePath, splitAbsoluteForm, type EscapedSlashes } from './request-target.js';

/** Where the proxy reads the routing table in force: one reference, swapped whole. */
export interface TableReader {
  readonly current: RoutingTable | null;
}

/** What resolving a request needs: the table in force, who is trusted, where clients are. */
export interface ResolverOptions {
  readonly nodeName: string;
  readonly trustedProxies: PrefixMap<true>;
  /** Request header fields accepted; more get 431. */
  readonly maxHeaders: number;
  /** What `%2F` / `%5C` in a request path do: kept encoded, refused, or decoded. */
  readonly escapedSlashes: EscapedSlashes;
  readonly tables: TableReader;
  readonly locator: Locator;
  readonly metrics: Metrics;
}

const kPeer = Symbol('meridian.peer');
type PeerSocket = Socket & { [kPeer]?: Peer };

/** A socket peer, whether it is a trusted proxy, and whether the connection is TLS. */
export interface Peer {
  readonly address: ClientAddress;
  readonly trusted: boolean;
  readonly secure: boolean;
}

/** Where a request goes. */
export interface Target {
  /** Origin-form request target to send upstream. */
  readonly url: string;
  readonly version: Version;
  /** Where the client is, as steering saw it: retries steer from the same place. */
  readonly origin: Origin;
  /** The request's authority: its Host header, or the host of an absolute-form target. */
  readonly host: string | undefined;
  readonly route: Route;
  readonly endpoint: Endpoint;
  readonly setCookie: string | null;
}

/** Why a request is answered by Meridian itself, and the series it counts in. */
export interface Rejection {
  readonly error: ProxyError;
  readonly series: RequestSeries;
  /** The route and version matched before nothing could take the request (for the access log). */
  readonly route?: Route;
  readonly version?: Version;
}

/**
 * The request phases shared by plain requests and upgrades, in order: who the
 * peer is, the request id, the checks of head and target, the route, the
 * version, the region and the endpoint; then the forwarding headers.
 */
export class RequestResolver {
  readonly #options: ResolverOptions;
  readonly #via: string;
  readonly #unrouted: RequestSeries;

  constructor(options: ResolverOptions) {
    this.#options = options;
    this.#via = `1.1 ${options.nodeName}`;
    this.#unrouted = options.metrics.series({ route: '', service: '', version: '', region: '' });
  }

  /** The peer of a socket and whether it is a trusted proxy; computed once per connection. */
  peerOf(socket: Socket): Peer {
    const tagged = socket as PeerSocket;
    let peer = tagged[kPeer];
    if (peer === undefined) {
      const text = plainAddress(socket.remoteAddress ?? '');
      const ip = parseIp(text);
      const secure = (socket as Socket & { encrypted?: boolean }).encrypted === true;
      peer = { address: { text, ip }, trusted: ip !== null && this.#options.trustedProxies.lookup(ip) !== undefined, secure };
      tagged[kPeer] = peer;
    }
    return peer;
  }

  /** The request's id: a trusted peer's when it is a safe token, else a fresh UUID. */
  requestIdFor(head: RequestHead, peer: Peer): string {
    return keepsRequestId(head.requestId, peer.trusted) ? head.requestId : randomUUID();
  }

  /** The client's address after the trusted-proxy rule, as text (computed only for the access log). */
  clientText(peer: Peer, forwardedFor: string | undefined): string {
    return peer.trusted ? clientAddress(peer.address, true, forwardedFor, this.#options.trustedProxies).text : peer.address.text;
  }

  /** Adds the forwarding headers and the request id to a request's outgoing header list. */
  forwardingHeaders(forward: string[], head: RequestHead, peer: Peer, host: string | undefined, requestId: string): void {
    forward.push('x-request-id', requestId);
    const trusted = peer.trusted;
    forward.push('x-forwarded-for', trusted && head.forwardedFor !== undefined ? `${head.forwardedFor}, ${peer.address.text}` : peer.address.text);
    forward.push('x-forwarded-proto', trusted && head.forwardedProto !== undefined ? head.forwardedProto : peer.secure ? 'https' : 'http');
    const forwardedHost = trusted && head.forwardedHost !== undefined ? head.forwardedHost : host;
    if (forwardedHost !== undefined) forward.push('x-forwarded-host', forwardedHost);
    forward.push('via', head.via === undefined ? this.#via : `${head.via}, ${this.#via}`);
  }

  /**
   * The routing phases shared by plain requests and upgrades: check the head
   * and target, match the route, split the version, steer to a region, pick an
   * endpoint.
   */
  resolve(req: DownstreamRequest, head: RequestHead, peer: Peer): Target | Rejection {
    if (head.error !== null) return { error: head.error, series: this.#unrouted };
    if (req.rawHeaders.length > 2 * this.#options.maxHeaders) return { error: ERRORS.tooManyHeaders, series: this.#unrouted };
    const table = this.#options.tables.current;
    if (table === null) return { error: ERRORS.noTable, series: this.#unrouted };
    let url = req.url ?? '/';
    let host = head.host;
    if (url.charCodeAt(0) !== 47 /* / */ && !(url === '*' && req.method === 'OPTIONS')) {
      const target = splitAbsoluteForm(url);
      if (target === null) return { error: ERRORS.badRequest, series: this.#unrouted };
      // RFC 9112 3.2.2: the target's authority replaces any Host the client sent.
      host = target.host;
      url = target.path;
      setHeader(head.forward, 'host', host);
    }
    if (needsNormalising(url)) {
      // Routing and the upstream must see the same path: normalised once, here.
      const normal = normalisePath(url, this.#options.escapedSlashes);
      if (normal === null) return { error: ERRORS.badRequest, series: this.#unrouted };
      url = normal;
    }
    const route = table.matcher.match(host, url);
    if (route === null) return { error: ERRORS.noRoute, series: this.#unrouted };
    const service = route.service;
    if (head.meridian !== null && service.split.overrideHeader !== null) restoreHeld(head, service.split.overrideHeader);
    const choice = service.split.choose(req.rawHeaders);
    const version = choice.version;
    let origin = this.#options.locator.node;
    if (version.steering.usesOrigin) {
      const client = peer.trusted ? clientAddress(peer.address, true, head.forwardedFor, this.#options.trustedProxies) : peer.address;
      origin = this.#options.locator.locate(client.ip);
    }
    const pick = { exclude: null, sawFull: false };
    const endpoint = selectEndpoint(version, origin, service.failWhenAllDown, pick);
    if (endpoint === null) {
      const series = this.#options.metrics.series({ route: route.name, service: service.name, version: version.name, region: '' });
      return { error: pick.sawFull ? ERRORS.overloaded : ERRORS.noHealthyUpstream, series, route, version };
    }
    return { url, host, version, origin, route, endpoint, setCookie: choice.setCookie };
  }

}
