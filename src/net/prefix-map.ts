import { formatIp, parseIp, type IpAddress } from './ip.js';

/** A CIDR block such as `10.0.0.0/8` or `2001:db8::/32`, host bits cleared. */
export interface Cidr {
  readonly family: 4 | 6;
  readonly network: IpAddress;
  readonly prefixLength: number;
  readonly text: string;
}

/** Parses CIDR notation (a bare address means a single host); returns an error message when malformed. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  const ip = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (ip === null) return `"${text}" is not an IP address or CIDR block`;
  // An IPv4-mapped IPv6 block is stored as IPv4: shift its prefix down by 96 bits.
  const mappedV4 = ip.family === 4 && text.slice(0, slash < 0 ? undefined : slash).includes(':');
  const bits = ip.family === 4 ? 32 : 128;
  let prefixLength = bits;
  if (slash >= 0) {
    const lengthText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lengthText)) return `"${text}" has an invalid prefix length`;
    prefixLength = Number(lengthText) - (mappedV4 ? 96 : 0);
    if (prefixLength < 0 || prefixLength > bits) return `"${text}" has a prefix length out of range 0-${mappedV4 ? 128 : bits}`;
  }
  const network: IpAddress =
    ip.family === 4
      ? { family: 4, value: prefixLength === 0 ? 0 : ((ip.value >>> (32 - prefixLength)) << (32 - prefixLength)) >>> 0 }
      : { family: 6, value: (ip.value >> BigInt(128 - prefixLength)) << BigInt(128 - prefixLength) };
  return { family: ip.family, network, prefixLength, text: `${formatIp(network)}/${prefixLength}` };
}

interface Level<K, V> {
  readonly prefixLength: number;
  readonly entries: Map<K, V>;
}

function v4Key(value: number, prefixLength: number): number {
  return prefixLength === 0 ? 0 : value >>> (32 - prefixLength);
}

function v6Key(value: bigint, prefixLength: number): bigint {
  return value >> BigInt(128 - prefixLength);
}

/**
 * Longest-prefix-match map from CIDR blocks to values, for IPv4 and IPv6.
 * One hash lookup per distinct prefix length, longest first: fast for the handful
 * of lengths real network maps use, and immutable once built.
 */
export class PrefixMap<V> {
  readonly #v4: Level<number, V>[] = [];
  readonly #v6: Level<bigint, V>[] = [];
  #size = 0;

  /** Adds a block; a later add of the same block replaces the earlier value. */
  add(cidr: Cidr, value: V): void {
    this.#size++;
    if (cidr.network.family === 4) {
      this.#level(this.#v4, cidr.prefixLength).set(v4Key(cidr.network.value, cidr.prefixLength), value);
    } else {
      this.#level(this.#v6, cidr.prefixLength).set(v6Key(cidr.network.value, cidr.prefixLength), value);
    }
  }

  /** Number of blocks added. */
  get size(): number {
    return this.#size;
  }

  /** The value of the longest block containing the address, or undefined. */
  lookup(ip: IpAddress): V | undefined {
    return this.lookupMatch(ip)?.value;
  }

  /** The longest block containing the address with its prefix length, or undefined. */
  lookupMatch(ip: IpAddress): { value: V; prefixLength: number } | undefined {
    if (ip.family === 4) {
      for (const level of this.#v4) {
        const value = level.entries.get(v4Key(ip.value, level.prefixLength));
        if (value !== undefined) return { value, prefixLength: level.prefixLength };
      }
    } else {
      for (const level of this.#v6) {
        const value = level.entries.get(v6Key(ip.value, level.prefixLength));
        if (value !== undefined) return { value, prefixLength: level.prefixLength };
      }
    }
    return undefined;
  }

  /** True when the textual address falls in any block; false for malformed text. */
  containsText(text: string): boolean {
    const ip = parseIp(text);
    return ip !== null && this.lookupMatch(ip) !== undefined;
  }

  #level<K>(levels: Level<K, V>[], prefixLength: number): Map<K, V> {
    let level = levels.find((l) => l.prefixLength === prefixLength);
    if (level === undefined) {
      level = { prefixLength, entries: new Map<K, V>() };
      levels.push(level);
      levels.sort((a, b) => b.prefixLength - a.prefixLength);
    }
    return level.entries;
  }
}
