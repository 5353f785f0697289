/** Lookups in a flat raw header array (`[name, value, ...]`, names in any case), without parsing it. */

/** The first value of a header by lowercase name, or undefined. */
export function rawHeader(raw: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === lowerName.length && name.toLowerCase() === lowerName) return raw[i + 1];
  }
  return undefined;
}

/** Finds one cookie's value in a Cookie header value; null when absent. */
export function readCookie(header: string, name: string): string | null {
  let start = 0;
  while (start < header.length) {
    while (header.charCodeAt(start) === 32) start++;
    let end = header.indexOf(';', start);
    if (end < 0) end = header.length;
    if (header.startsWith(name, start) && header.charCodeAt(start + name.length) === 61 /* = */) {
      let value = header.slice(start + name.length + 1, end).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      return value;
    }
    start = end + 1;
  }
  return null;
}

/** A cookie's value from any Cookie header of a raw array; null when absent. */
export function rawCookie(raw: readonly string[], name: string): string | null {
  for (let i = 0; i < raw.length; i += 2) {
    const header = raw[i] as string;
    if (header.length === 6 && header.toLowerCase() === 'cookie') {
      const value = readCookie(raw[i + 1] as string, name);
      if (value !== null) return value;
    }
  }
  return null;
}
