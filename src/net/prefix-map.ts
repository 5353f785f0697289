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

/** Leading bits two IPv4 values share. */
function commonV4(a: number, b: number): number {
  return Math.clz32((a ^ b) >>> 0);
}

/** Leading bits two IPv6 values share. */
function commonV6(a: bigint, b: bigint): number {
  const x = a ^ b;
  for (let shift = 96; shift >= 0; shift -= 32) {
    const word = Number((x >> BigInt(shift)) & 0xffffffffn);
    if (word !== 0) return 96 - shift + Math.clz32(word);
  }
  return 128;
}

/** The blocks of one family sorted by network address, then prefix length: what scopes are computed from. */
interface SortedBlocks<K> {
  readonly starts: readonly K[];
  readonly lengths: readonly number[];
}

function sortBlocks<K extends number | bigint>(levels: readonly Level<K, unknown>[], start: (key: K, prefixLength: number) => K): SortedBlocks<K> {
  const blocks: { start: K; length: number }[] = [];
  for (const level of levels) for (const key of level.entries.keys()) blocks.push({ start: start(key, level.prefixLength), length: level.prefixLength });
  blocks.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.length - b.length));
  return { starts: blocks.map((b) => b.start), lengths: blocks.map((b) => b.length) };
}

/**
 * The shortest prefix of `value` inside which every address has the same
 * longest match: at least the matched block's length, and one bit longer than
 * the most bits any block not holding `value` shares with it (such a block is
 * a more specific network nested in the match, or in the unmatched space,
 * that decides differently). The nearest such block below `value` in sorted
 * order shares the most bits of all blocks below; the first block above it
 * shares the most of all blocks above. Blocks holding `value` are skipped on
 * the way down; the walk may stop before the longest of them, but only at a
 * block inside it, which already asks for a longer prefix.
 */
function uniformPrefix<K extends number | bigint>(sorted: SortedBlocks<K>, value: K, bits: number, common: (a: K, b: K) => number, holds: (start: K, length: number, value: K) => boolean): number {
  const { starts, lengths } = sorted;
  let lo = 0;
  let hi = starts.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((starts[mid] as K) <= value) lo = mid + 1;
    else hi = mid;
  }
  let matched = 0;
  let shared = -1;
  if (lo < starts.length) shared = common(starts[lo] as K, value);
  for (let i = lo - 1; i >= 0; i--) {
    const start = starts[i] as K;
    const length = lengths[i] as number;
    if (holds(start, length, value)) {
      if (length > matched) matched = length;
      continue;
    }
    shared = Math.max(shared, common(start, value));
    break;
  }
  return Math.min(bits, Math.max(matched, shared + 1));
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
  /** Built on the first scope question, dropped by add(). */
  #sortedV4: SortedBlocks<number> | null = null;
  #sortedV6: SortedBlocks<bigint> | null = null;

  /** Adds a block; a later add of the same block replaces the earlier value. */
  add(cidr: Cidr, value: V): void {
    this.#size++;
    this.#sortedV4 = null;
    this.#sortedV6 = null;
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

  /**
   * The shortest prefix length of the address inside which every address has
   * the same longest match as it (no match counting as one answer): what an
   * answer decided by this map holds for. 0 when the address's family has no blocks.
   */
  uniformPrefix(ip: IpAddress): number {
    if (ip.family === 4) {
      this.#sortedV4 ??= sortBlocks(this.#v4, (key, length) => (length === 0 ? 0 : (key << (32 - length)) >>> 0));
      return uniformPrefix(this.#sortedV4, ip.value, 32, commonV4, (start, length, value) => v4Key(start, length) === v4Key(value, length));
    }
    this.#sortedV6 ??= sortBlocks(this.#v6, (key, length) => key << BigInt(128 - length));
    return uniformPrefix(this.#sortedV6, ip.value, 128, commonV6, (start, length, value) => v6Key(start, length) === v6Key(value, length));
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
