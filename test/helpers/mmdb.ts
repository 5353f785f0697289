import { writeFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';

/**
 * A value with an explicit MaxMind DB type. An object with exactly one key that
 * is one of these names is always read as the wrapper, never as a map.
 */
export type MmdbTyped =
  | { readonly uint16: number }
  | { readonly uint32: number }
  | { readonly int32: number }
  | { readonly uint64: bigint }
  | { readonly uint128: bigint }
  | { readonly double: number }
  | { readonly float: number }
  | { readonly bytes: Uint8Array };

/**
 * A value for the data section. A plain number is a uint32 when it is an integer
 * in [0, 2^32), otherwise a double: write `{ double: 53 }` for a whole-degree latitude.
 */
export type MmdbValue = string | number | boolean | MmdbTyped | MmdbValue[] | { readonly [key: string]: MmdbValue };

/** What goes into a database file. */
export interface MmdbOptions {
  readonly databaseType: string;
  /** 6 puts IPv4 networks under ::/96, where readers look IPv4 addresses up. */
  readonly ipVersion: 4 | 6;
  /** Bits per search-tree record; 28 unless given. */
  readonly recordSize?: 24 | 28 | 32;
  /**
   * An address in several networks gets the data of the longest prefix. A network
   * holding a more specific one is split around it, so lookups in the rest report
   * the prefix length of the piece they fall in (as every MaxMind DB writer does).
   */
  readonly networks: readonly { readonly cidr: string; readonly data: MmdbValue }[];
  readonly languages?: readonly string[];
  readonly description?: Readonly<Record<string, string>>;
  /** Seconds since the Unix epoch; now unless given. */
  readonly buildEpoch?: number;
}

const METADATA_MARKER = Buffer.from('\xab\xcd\xefMaxMind.com', 'latin1');
const DATA_SEPARATOR_BYTES = 16;

/** Type numbers from the spec; 8 and above are written as "extended" (type 0 plus a byte). */
const TYPE = { utf8: 2, double: 3, bytes: 4, uint16: 5, uint32: 6, map: 7, int32: 8, uint64: 9, uint128: 10, array: 11, boolean: 14, float: 15 } as const;

/** The control byte(s) of a field: 3 type bits, then a 5-bit size with 29/30/31 meaning "more size bytes follow". */
function header(type: number, size: number): Buffer {
  const extended = type > 7 ? [type - 7] : [];
  const first = (type > 7 ? 0 : type) << 5;
  if (size < 29) return Buffer.from([first | size, ...extended]);
  if (size < 285) return Buffer.from([first | 29, ...extended, size - 29]);
  if (size < 65_821) return Buffer.from([first | 30, ...extended, (size - 285) >> 8, (size - 285) & 0xff]);
  if (size >= 65_821 + 2 ** 24) throw new RangeError(`a field of ${size} bytes or entries is too large for the format`);
  const rest = size - 65_821;
  return Buffer.from([first | 31, ...extended, rest >> 16, (rest >> 8) & 0xff, rest & 0xff]);
}

/** An unsigned integer in as few big-endian bytes as it needs (zero takes none). */
function encodeUnsigned(type: number, value: number | bigint, maxBytes: number, name: string): Buffer {
  if (typeof value === 'number' && !Number.isInteger(value)) throw new RangeError(`${name} ${value} is not an integer`);
  const big = BigInt(value);
  if (big < 0n || big >= 1n << BigInt(maxBytes * 8)) throw new RangeError(`${name} ${value} is out of range`);
  const bytes: number[] = [];
  for (let rest = big; rest > 0n; rest >>= 8n) bytes.unshift(Number(rest & 0xffn));
  return Buffer.concat([header(type, bytes.length), Buffer.from(bytes)]);
}

/** Readers treat an int32 shorter than 4 bytes as positive, so a negative one always takes 4. */
function encodeInt32(value: number): Buffer {
  if (!Number.isInteger(value) || value < -(2 ** 31) || value >= 2 ** 31) throw new RangeError(`int32 ${value} is out of range`);
  if (value >= 0) return encodeUnsigned(TYPE.int32, value, 4, 'int32');
  const payload = Buffer.alloc(4);
  payload.writeInt32BE(value);
  return Buffer.concat([header(TYPE.int32, 4), payload]);
}

function encodeFloat(type: number, value: number): Buffer {
  const payload = Buffer.alloc(type === TYPE.double ? 8 : 4);
  if (type === TYPE.double) payload.writeDoubleBE(value);
  else payload.writeFloatBE(value);
  return Buffer.concat([header(type, payload.length), payload]);
}

/** The encoders behind the `{ uint16: n }`-style wrappers. */
const TYPED_ENCODERS = {
  uint16: (v: number) => encodeUnsigned(TYPE.uint16, v, 2, 'uint16'),
  uint32: (v: number) => encodeUnsigned(TYPE.uint32, v, 4, 'uint32'),
  int32: (v: number) => encodeInt32(v),
  uint64: (v: bigint) => encodeUnsigned(TYPE.uint64, v, 8, 'uint64'),
  uint128: (v: bigint) => encodeUnsigned(TYPE.uint128, v, 16, 'uint128'),
  double: (v: number) => encodeFloat(TYPE.double, v),
  float: (v: number) => encodeFloat(TYPE.float, v),
  bytes: (v: Uint8Array) => Buffer.concat([header(TYPE.bytes, v.length), v]),
};

function encodeTyped(name: keyof typeof TYPED_ENCODERS, value: unknown): Buffer {
  const expected = name === 'bytes' ? 'Uint8Array' : name === 'uint64' || name === 'uint128' ? 'bigint' : 'number';
  const actual = value instanceof Uint8Array ? 'Uint8Array' : typeof value;
  if (actual !== expected) throw new TypeError(`{ ${name}: ... } needs a ${expected}, got ${actual}`);
  return TYPED_ENCODERS[name](value as never);
}

function isTypedName(key: string | undefined): key is keyof typeof TYPED_ENCODERS {
  return key !== undefined && Object.hasOwn(TYPED_ENCODERS, key);
}

/** One value in the data-section encoding, without pointers. */
export function encodeMmdbValue(value: MmdbValue): Buffer {
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    return Buffer.concat([header(TYPE.utf8, bytes.length), bytes]);
  }
  if (typeof value === 'boolean') return header(TYPE.boolean, value ? 1 : 0);
  if (typeof value === 'number') {
    const fitsUint32 = Number.isInteger(value) && value >= 0 && value < 2 ** 32;
    return fitsUint32 ? encodeUnsigned(TYPE.uint32, value, 4, 'uint32') : encodeFloat(TYPE.double, value);
  }
  if (Array.isArray(value)) return Buffer.concat([header(TYPE.array, value.length), ...value.map(encodeMmdbValue)]);
  const keys = Object.keys(value);
  if (keys.length === 1 && isTypedName(keys[0])) return encodeTyped(keys[0], (value as Record<string, unknown>)[keys[0]]);
  const entries = Object.entries(value as { readonly [key: string]: MmdbValue });
  return Buffer.concat([header(TYPE.map, entries.length), ...entries.flatMap(([k, v]) => [encodeMmdbValue(k), encodeMmdbValue(v)])]);
}

/** The 16 bytes of an IPv6 address or the 4 of an IPv4 one (node:net has already validated it). */
function addressBytes(address: string): Buffer {
  if (isIPv4(address)) return Buffer.from(address.split('.').map(Number));
  const lastColon = address.lastIndexOf(':');
  let text = address;
  if (address.includes('.')) {
    const v4 = addressBytes(address.slice(lastColon + 1));
    text = `${address.slice(0, lastColon + 1)}${v4.readUInt16BE(0).toString(16)}:${v4.readUInt16BE(2).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const groupsOf = (part: string | undefined): string[] => (part ? part.split(':') : []);
  const left = groupsOf(head);
  const right = groupsOf(tail);
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const bytes = Buffer.alloc(16);
  groups.forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16), i * 2));
  return bytes;
}

function bitAt(bytes: Buffer, index: number): 0 | 1 {
  return (((bytes[index >> 3] ?? 0) >> (7 - (index & 7))) & 1) as 0 | 1;
}

/** A network as the bits a lookup walks, in the database's address family. */
function parseNetwork(cidr: string, ipVersion: 4 | 6): { bits: Buffer; prefixLength: number } {
  const [address = '', length = '', ...rest] = cidr.split('/');
  const v4 = isIPv4(address);
  if ((!v4 && !isIPv6(address)) || rest.length > 0 || !/^\d{1,3}$/.test(length)) throw new Error(`${cidr} is not a CIDR network`);
  const bits = addressBytes(address);
  const prefixLength = Number(length);
  if (prefixLength < 1 || prefixLength > bits.length * 8) throw new Error(`${cidr}: prefix length must be 1..${bits.length * 8} (the root of the tree is always a node)`);
  for (let i = prefixLength; i < bits.length * 8; i++) if (bitAt(bits, i)) throw new Error(`${cidr} has host bits set`);
  if (!v4 && ipVersion === 4) throw new Error(`${cidr} is IPv6 but the database is IPv4`);
  if (v4 && ipVersion === 6) return { bits: Buffer.concat([Buffer.alloc(12), bits]), prefixLength: prefixLength + 96 };
  return { bits, prefixLength };
}

/** A record is a child node, an offset into the data section, or null for "no data". */
type TreeRecord = TreeNode | number | null;
class TreeNode {
  records: [TreeRecord, TreeRecord] = [null, null];
}

/** Points the walk for the network's bits at `offset`; shorter networks must go in first. */
function insert(root: TreeNode, bits: Buffer, prefixLength: number, offset: number): void {
  let node = root;
  for (let depth = 0; depth < prefixLength - 1; depth++) {
    const bit = bitAt(bits, depth);
    let next = node.records[bit];
    if (!(next instanceof TreeNode)) {
      // The rest of a shorter network keeps its data on both sides of the split.
      const split = new TreeNode();
      split.records = [next, next];
      node.records[bit] = split;
      next = split;
    }
    node = next;
  }
  node.records[bitAt(bits, prefixLength - 1)] = offset;
}

function preorder(node: TreeNode, into: TreeNode[] = []): TreeNode[] {
  into.push(node);
  for (const child of node.records) if (child instanceof TreeNode) preorder(child, into);
  return into;
}

function writeNode(out: Buffer, at: number, recordSize: 24 | 28 | 32, left: number, right: number): void {
  if (recordSize === 32) {
    out.writeUInt32BE(left, at);
    out.writeUInt32BE(right, at + 4);
    return;
  }
  const half = recordSize === 24 ? 3 : 4;
  out.writeUIntBE(left & 0xffffff, at, 3);
  out.writeUIntBE(right & 0xffffff, at + half, 3);
  // 28 bits: the middle byte holds the left record's top nibble high, the right's low.
  if (recordSize === 28) out[at + 3] = ((left >>> 24) << 4) | (right >>> 24);
}

/** A whole .mmdb file: search tree, separator, data section, metadata. */
export function buildMmdb(options: MmdbOptions): Buffer {
  const recordSize = options.recordSize ?? 28;
  const data: Buffer[] = [];
  let dataLength = 0;
  const offsets = new Map<string, number>();
  const parsed = options.networks.map(({ cidr, data: value }) => {
    const encoded = encodeMmdbValue(value);
    const key = encoded.toString('latin1');
    let offset = offsets.get(key);
    if (offset === undefined) {
      offset = dataLength;
      offsets.set(key, offset);
      data.push(encoded);
      dataLength += encoded.length;
    }
    return { ...parseNetwork(cidr, options.ipVersion), offset };
  });

  const root = new TreeNode();
  for (const n of parsed.sort((a, b) => a.prefixLength - b.prefixLength)) insert(root, n.bits, n.prefixLength, n.offset);
  const nodes = preorder(root);
  const nodeCount = nodes.length;
  const numbers = new Map(nodes.map((node, i) => [node, i]));
  const valueOf = (record: TreeRecord): number =>
    record === null ? nodeCount : record instanceof TreeNode ? (numbers.get(record) ?? nodeCount) : nodeCount + DATA_SEPARATOR_BYTES + record;
  if (nodeCount + DATA_SEPARATOR_BYTES + dataLength >= 2 ** recordSize) {
    throw new RangeError(`${nodeCount} nodes and ${dataLength} data bytes do not fit records of ${recordSize} bits`);
  }
  const nodeBytes = recordSize / 4;
  const tree = Buffer.alloc(nodeCount * nodeBytes);
  nodes.forEach((node, i) => writeNode(tree, i * nodeBytes, recordSize, valueOf(node.records[0]), valueOf(node.records[1])));

  const metadata = encodeMmdbValue({
    node_count: { uint32: nodeCount },
    record_size: { uint16: recordSize },
    ip_version: { uint16: options.ipVersion },
    database_type: options.databaseType,
    languages: [...(options.languages ?? [])],
    binary_format_major_version: { uint16: 2 },
    binary_format_minor_version: { uint16: 0 },
    build_epoch: { uint64: BigInt(options.buildEpoch ?? Math.floor(Date.now() / 1000)) },
    description: { ...options.description },
  });
  return Buffer.concat([tree, Buffer.alloc(DATA_SEPARATOR_BYTES), ...data, METADATA_MARKER, metadata]);
}

/** Writes `buildMmdb(options)` to `path`. */
export async function writeMmdb(path: string, options: MmdbOptions): Promise<void> {
  await writeFile(path, buildMmdb(options));
}
