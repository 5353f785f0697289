import { isIP, type AddressInfo, type Server } from 'node:net';
import { parseIPv4, parseIPv6 } from './ip.js';

/** A host and port, as written in `listen` settings and endpoint addresses. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$/i;

/**
 * Parses `host:port`, `[v6]:port` or `:port` (all interfaces).
 * Returns an error message instead of throwing so schemas can report it in place.
 */
export function parseHostPort(text: string, options: { allowEmptyHost: boolean }): HostPort | string {
  let host: string;
  let portText: string;
  if (text.includes('://')) return `"${text}": write host:port, without a scheme`;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return `"${text}" is not "[ipv6]:port"`;
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (isIP(host) !== 6) return `"${host}" is not an IPv6 address`;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return `"${text}" has no port (expected host:port)`;
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) return `"${text}": write IPv6 addresses in brackets, as [::1]:8080`;
    if (host === '') {
      if (!options.allowEmptyHost) return `"${text}" has no host`;
    } else if (isIP(host) === 0 && !HOSTNAME.test(host)) {
      return `"${host}" is not a valid host name or IP address`;
    }
  }
  if (!/^\d{1,5}$/.test(portText)) return `"${portText}" is not a port number`;
  const port = Number(portText);
  const minPort = options.allowEmptyHost ? 0 : 1;
  if (port < minPort || port > 65535) return `port ${port} is out of range ${minPort}-65535`;
  return { host: host === '' ? '0.0.0.0' : host, port };
}

/** An endpoint address as the routing table writes it: `host:port`, `http://host:port` or `https://host:port`. */
export interface EndpointAddress {
  readonly address: HostPort;
  /** The scheme written, or null for a bare `host:port`. */
  readonly scheme: 'http' | 'https' | null;
}

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;

/**
 * Parses an endpoint address: a bare `host:port` (plaintext, as always), or a
 * URL of scheme `http` or `https` with a host and port and no path (a lone
 * trailing `/` is allowed). Returns an error message instead of throwing.
 */
export function parseEndpointAddress(text: string): EndpointAddress | string {
  const m = SCHEME.exec(text);
  if (m === null) {
    const address = parseHostPort(text, { allowEmptyHost: false });
    return typeof address === 'string' ? address : { address, scheme: null };
  }
  const scheme = (m[1] as string).toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') return `"${text}": an endpoint is host:port, http://host:port or https://host:port`;
  const rest = text.slice(m[0].length).replace(/\/$/, '');
  if (/[/?#@]/.test(rest)) return `"${text}": an endpoint URL has no path, query or user part (write ${scheme}://host:port)`;
  const address = parseHostPort(rest, { allowEmptyHost: false });
  return typeof address === 'string' ? address : { address, scheme };
}

/** Formats a host and port back into `host:port`, bracketing IPv6 literals. */
export function formatHostPort({ host, port }: HostPort): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Whether a listen host is reachable from this machine only: `localhost`, 127.0.0.0/8 or ::1 (also as ::ffff:127.x.y.z). */
export function isLoopbackHost(host: string): boolean {
  if (/^localhost\.?$/i.test(host)) return true;
  const v4 = parseIPv4(host);
  if (v4 >= 0) return v4 >>> 24 === 127;
  const v6 = parseIPv6(host);
  if (v6 === null) return false;
  return v6 === 1n || (v6 >> 32n === 0xffffn && Number(v6 & 0xffffffffn) >>> 24 === 127);
}

/**
 * How a listening port is held when a node runs several processes: by this
 * process alone (`own`), through the cluster primary that accepts for its
 * workers (`shared`), or by every worker with SO_REUSEPORT (`reuseport`: the
 * kernel spreads connections and datagrams).
 */
export type PortSharing = 'own' | 'shared' | 'reuseport';

/** The extra node:net listen / node:dgram bind options for a way of sharing a port. */
export function sharingOptions(sharing: PortSharing): { exclusive: boolean; reusePort?: true } {
  switch (sharing) {
    case 'reuseport':
      return { exclusive: true, reusePort: true };
    case 'shared':
      return { exclusive: false };
    default:
      return { exclusive: true };
  }
}

/** Starts a socket server listening (held as `sharing` says); resolves with the bound address, rejects on a failed bind (EADDRINUSE). */
export function listenOn(server: Server, host: string, port: number, sharing: PortSharing = 'own'): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, ...sharingOptions(sharing) }, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}
