import { parseIp, type IpAddress } from '../net/ip.js';
import type { PrefixMap } from '../net/prefix-map.js';

/** The address a request came from, after the trusted-proxy rule. */
export interface ClientAddress {
  /** Textual address, as it will appear in X-Forwarded-For. */
  readonly text: string;
  /** Parsed form for geo lookups; null when unparsable. */
  readonly ip: IpAddress | null;
}

/** Strips the IPv4-mapped IPv6 prefix that dual-stack sockets report (`::ffff:1.2.3.4`). */
export function plainAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/**
 * The client address per the contract: the socket peer, unless the peer is a
 * trusted proxy; then the right-most X-Forwarded-For entry that is not itself
 * trusted (the left-most entry when every hop is trusted). An entry that is not
 * an IP address stops the walk: what lies left of it cannot be trusted.
 */
export function clientAddress(peer: ClientAddress, peerTrusted: boolean, forwardedFor: string | undefined, trusted: PrefixMap<true>): ClientAddress {
  if (!peerTrusted || forwardedFor === undefined || forwardedFor === '') return peer;
  let result = peer;
  let end = forwardedFor.length;
  while (end > 0) {
    const comma = forwardedFor.lastIndexOf(',', end - 1);
    const text = plainAddress(forwardedFor.slice(comma + 1, end).trim());
    end = comma < 0 ? 0 : comma;
    if (text === '') continue;
    const ip = parseIp(text);
    if (ip === null) return result;
    result = { text, ip };
    if (trusted.lookup(ip) === undefined) return result;
  }
  return result;
}
