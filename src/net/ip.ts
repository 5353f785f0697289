/** A parsed IP address: IPv4 as an unsigned 32-bit number, IPv6 as a 128-bit bigint. */
export type IpAddress = { readonly family: 4; readonly value: number } | { readonly family: 6; readonly value: bigint };

/** Parses dotted-quad IPv4 into an unsigned 32-bit number; -1 when malformed. */
export function parseIPv4(text: string): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1; // no leading zeros: "01" is ambiguous (octal)
      octet = octet * 10 + (c - 48);
      if (octet > 255 || ++digits > 3) return -1;
    } else if (c === 46 && digits > 0 && dots < 3) {
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + octet;
}

function parseHextets(part: string, out: number[]): boolean {
  if (part === '') return true;
  for (const group of part.split(':')) {
    if (!/^[0-9a-f]{1,4}$/i.test(group)) return false;
    out.push(parseInt(group, 16));
  }
  return true;
}

/** Parses an IPv6 address (with `::`, embedded IPv4 and zone id) into a bigint; null when malformed. */
export function parseIPv6(input: string): bigint | null {
  const zone = input.indexOf('%');
  let text = zone >= 0 ? input.slice(0, zone) : input;
  const lastColon = text.lastIndexOf(':');
  if (lastColon >= 0 && text.includes('.', lastColon)) {
    // Rewrite a dotted IPv4 tail as two hex groups, then parse as plain IPv6.
    const v4 = parseIPv4(text.slice(lastColon + 1));
    if (v4 < 0) return null;
    text = `${text.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const head: number[] = [];
  const rest: number[] = [];
  const gap = text.indexOf('::');
  if (gap >= 0) {
    if (text.indexOf('::', gap + 1) >= 0) return null;
    if (!parseHextets(text.slice(0, gap), head) || !parseHextets(text.slice(gap + 2), rest)) return null;
  } else if (!parseHextets(text, head)) {
    return null;
  }
  const given = head.length + rest.length;
  if (gap >= 0 ? given > 7 : given !== 8) return null;
  let value = 0n;
  for (const g of head) value = (value << 16n) | BigInt(g);
  value <<= BigInt(16 * (8 - given));
  for (const g of rest) value = (value << 16n) | BigInt(g);
  return value;
}

const V4_MAPPED_PREFIX = 0xffffn << 32n;

/** Parses any textual IP address; IPv4-mapped IPv6 (`::ffff:1.2.3.4`) becomes IPv4. Null when malformed. */
export function parseIp(text: string): IpAddress | null {
  const v4 = parseIPv4(text);
  if (v4 >= 0) return { family: 4, value: v4 };
  if (!text.includes(':')) return null;
  const v6 = parseIPv6(text);
  if (v6 === null) return null;
  if (v6 >> 32n === 0xffffn) return { family: 4, value: Number(v6 - V4_MAPPED_PREFIX) };
  return { family: 6, value: v6 };
}

/** Formats a parsed address back to text (IPv6 in full, uncompressed hex groups). */
export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) {
    const v = ip.value;
    return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const groups: string[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(((ip.value >> shift) & 0xffffn).toString(16));
  return groups.join(':');
}
