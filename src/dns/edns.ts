import type { IpAddress } from '../net/ip.js';

/** EDNS option code of Client Subnet (RFC 7871). */
export const ECS_OPTION = 8;
/** The largest UDP answer Meridian sends (DNS flag day 2020: avoids IP fragmentation). */
export const MAX_UDP_ANSWER = 1232;
/** The largest UDP answer to a client without EDNS (RFC 1035). */
export const CLASSIC_UDP_ANSWER = 512;

/** A validated client subnet: no address bits are set past the source prefix. */
export interface ClientSubnet {
  readonly address: IpAddress;
  readonly sourcePrefixLength: number;
}

/** What a query's OPT record says. */
export interface Edns {
  readonly udpSize: number;
  readonly version: number;
  readonly dnssecOk: boolean;
  readonly subnet: ClientSubnet | null;
}

/** The OPT record as dns-packet decodes it (only the fields read here). */
export interface OptRecord {
  readonly type: string;
  readonly name: string;
  readonly udpPayloadSize?: number;
  readonly ednsVersion?: number;
  readonly flags?: number;
  readonly options?: readonly { readonly code: number; readonly data?: Uint8Array }[];
}

/** A problem that makes the query malformed (FORMERR), with the reason for logs. */
export class EdnsError extends Error {}

function bytesToIp(bytes: Uint8Array, family: 4 | 6): IpAddress {
  const width = family === 4 ? 4 : 16;
  let v6 = 0n;
  let v4 = 0;
  for (let i = 0; i < width; i++) {
    const byte = bytes[i] ?? 0;
    if (family === 4) v4 = v4 * 256 + byte;
    else v6 = (v6 << 8n) | BigInt(byte);
  }
  return family === 4 ? { family, value: v4 } : { family, value: v6 };
}

/**
 * Reads an ECS option (RFC 7871 section 6): family 1 or 2, a source prefix
 * within the family's width, exactly ceil(prefix / 8) address bytes, no
 * address bit set past the prefix, a zero scope.
 */
export function readClientSubnet(data: Uint8Array): ClientSubnet {
  if (data.length < 4) throw new EdnsError('client subnet option shorter than 4 bytes');
  const familyCode = (data[0] as number) * 256 + (data[1] as number);
  if (familyCode !== 1 && familyCode !== 2) throw new EdnsError(`client subnet family ${familyCode} is not 1 (IPv4) or 2 (IPv6)`);
  const family = familyCode === 1 ? 4 : 6;
  const sourcePrefixLength = data[2] as number;
  if (sourcePrefixLength > (family === 4 ? 32 : 128)) throw new EdnsError(`client subnet source prefix /${sourcePrefixLength} is too long for IPv${family}`);
  if ((data[3] as number) !== 0) throw new EdnsError('client subnet scope prefix must be 0 in a query');
  const address = data.subarray(4);
  if (address.length !== Math.ceil(sourcePrefixLength / 8)) throw new EdnsError(`client subnet carries ${address.length} address bytes for a /${sourcePrefixLength}`);
  const spare = address.length * 8 - sourcePrefixLength;
  // RFC 7871 6: bits past the source prefix must be zero; clearing them would answer for another address.
  if (spare > 0 && ((address[address.length - 1] as number) & ((1 << spare) - 1)) !== 0) throw new EdnsError(`client subnet has address bits set past its /${sourcePrefixLength}`);
  return { address: bytesToIp(address, family), sourcePrefixLength };
}

/** Reads the OPT record of a query's additional section; null without one. Throws EdnsError when malformed. */
export function readEdns(additionals: readonly { readonly type: string; readonly name: string }[]): Edns | null {
  let opt: OptRecord | null = null;
  for (const record of additionals) {
    if (record.type !== 'OPT') continue;
    if (opt !== null) throw new EdnsError('more than one OPT record');
    if (record.name !== '.') throw new EdnsError('OPT record not owned by the root');
    opt = record as OptRecord;
  }
  if (opt === null) return null;
  const version = opt.ednsVersion ?? 0;
  let subnet: ClientSubnet | null = null;
  // Options of a later EDNS version may mean something else: such a query gets BADVERS, unread.
  for (const option of version === 0 ? (opt.options ?? []) : []) {
    if (option.code !== ECS_OPTION) continue;
    if (subnet !== null) throw new EdnsError('more than one client subnet option');
    subnet = readClientSubnet(option.data ?? new Uint8Array(0));
  }
  return {
    udpSize: Math.max(CLASSIC_UDP_ANSWER, opt.udpPayloadSize ?? CLASSIC_UDP_ANSWER),
    version,
    dnssecOk: ((opt.flags ?? 0) & 0x8000) !== 0,
    subnet,
  };
}

/** The ECS option echoed in an answer: the client's family, source prefix and address, and the scope that decided. */
export function subnetOption(subnet: ClientSubnet, scopePrefixLength: number): { code: number; data: Buffer } {
  const family = subnet.address.family;
  const length = Math.ceil(subnet.sourcePrefixLength / 8);
  const data = Buffer.alloc(4 + length);
  data.writeUInt16BE(family === 4 ? 1 : 2, 0);
  data[2] = subnet.sourcePrefixLength;
  data[3] = scopePrefixLength;
  const width = family === 4 ? 4 : 16;
  for (let i = 0; i < length; i++) {
    const shift = (width - 1 - i) * 8;
    data[4 + i] = family === 4 ? (subnet.address.value >>> shift) & 0xff : Number((subnet.address.value >> BigInt(shift)) & 0xffn);
  }
  return { code: ECS_OPTION, data };
}
