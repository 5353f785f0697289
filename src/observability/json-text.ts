const HEX = '0123456789abcdef';

/** Whether a UTF-16 code unit must be escaped to keep a line pure ASCII, valid JSON. */
function needsEscape(c: number): boolean {
  return c < 0x20 || c === 0x22 || c === 0x5c || c > 0x7e;
}

/**
 * A string as a JSON string literal in pure ASCII: quotes, backslashes,
 * control characters and everything past `~` escaped (`\u00ff` for a byte
 * node:http read as latin1, lone surrogates as they are), so that a line's
 * length in characters is its length in bytes and any JSON parser reads it.
 * Longer than `max` characters inside the quotes: cut there, ending in `...`.
 * Strings with nothing to escape (nearly all) are copied once.
 */
export function jsonString(text: string, max: number): string {
  let i = 0;
  const n = text.length;
  while (i < n && !needsEscape(text.charCodeAt(i))) i++;
  if (i === n && n <= max) return `"${text}"`;
  i = Math.min(i, max);
  let out = text.slice(0, i);
  for (; i < n && out.length < max; i++) {
    const c = text.charCodeAt(i);
    if (!needsEscape(c)) out += text[i];
    else if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else out += `\\u${HEX[(c >> 12) & 15]}${HEX[(c >> 8) & 15]}${HEX[(c >> 4) & 15]}${HEX[c & 15]}`;
  }
  return i < n ? `"${out}..."` : `"${out}"`;
}

/** A string field's JSON value, or `null` when absent. */
export function jsonOrNull(text: string | undefined | null, max: number): string {
  return text === undefined || text === null ? 'null' : jsonString(text, max);
}
