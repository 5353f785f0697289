/** The fixed header before the question (RFC 1035 4.1.1); wire.ts builds on this module, so it is not imported from there. */
const HEADER_BYTES = 12;
/** Compression pointers carry 14 bits of offset (RFC 1035 4.1.4). */
const MAX_POINTER = 0x3fff;

/**
 * Where the RDATA of a type holds names that may be compressed: only the types
 * of RFC 1035 (RFC 3597 4). `names` names come first, after `skip` bytes.
 */
const RDATA_NAMES: ReadonlyMap<number, { readonly skip: number; readonly names: number }> = new Map([
  [2, { skip: 0, names: 1 }], // NS
  [3, { skip: 0, names: 1 }], // MD
  [4, { skip: 0, names: 1 }], // MF
  [5, { skip: 0, names: 1 }], // CNAME
  [6, { skip: 0, names: 2 }], // SOA: MNAME, RNAME, then five numbers
  [7, { skip: 0, names: 1 }], // MB
  [8, { skip: 0, names: 1 }], // MG
  [9, { skip: 0, names: 1 }], // MR
  [12, { skip: 0, names: 1 }], // PTR
  [14, { skip: 0, names: 2 }], // MINFO
  [15, { skip: 2, names: 1 }], // MX: preference, exchange
]);

/** A message that does not have the shape compress() expects: it is sent as it was. */
class Uncompressible extends Error {}

const ASCII_UPPER = /[A-Z]/;

/** The lookup key of a name's labels: ASCII letters lowercased only, as DNS compares names (RFC 4343). */
function keyOf(message: Buffer, start: number, end: number): string {
  const text = message.toString('latin1', start, end);
  return ASCII_UPPER.test(text) ? text.replace(/[A-Z]+/g, (upper) => upper.toLowerCase()) : text;
}

/** Rewrites one message, replacing each name's longest already-written suffix with a pointer. */
class Compressor {
  readonly #in: Buffer;
  readonly #out: Buffer;
  readonly #seen = new Map<string, number>();
  #at = HEADER_BYTES;
  #to = HEADER_BYTES;

  constructor(message: Buffer) {
    this.#in = message;
    this.#out = Buffer.allocUnsafe(message.length);
  }

  run(): Buffer {
    const m = this.#in;
    m.copy(this.#out, 0, 0, HEADER_BYTES);
    const questions = m.readUInt16BE(4);
    const records = m.readUInt16BE(6) + m.readUInt16BE(8) + m.readUInt16BE(10);
    for (let i = 0; i < questions; i++) {
      this.#name();
      this.#copy(4);
    }
    for (let i = 0; i < records; i++) this.#record();
    if (this.#at !== m.length) throw new Uncompressible('bytes after the last record');
    return this.#out.subarray(0, this.#to);
  }

  #record(): void {
    this.#name();
    this.#need(10);
    const type = this.#in.readUInt16BE(this.#at);
    const rdLength = this.#in.readUInt16BE(this.#at + 8);
    this.#copy(8);
    const lengthAt = this.#to;
    this.#to += 2;
    this.#at += 2;
    const end = this.#at + rdLength;
    const names = RDATA_NAMES.get(type);
    if (names === undefined) {
      this.#copy(rdLength);
    } else {
      this.#copy(names.skip);
      for (let i = 0; i < names.names; i++) this.#name();
      if (this.#at > end) throw new Uncompressible('names run past their RDATA');
      this.#copy(end - this.#at);
    }
    this.#out.writeUInt16BE(this.#to - lengthAt - 2, lengthAt);
  }

  /** Copies one uncompressed name, ending it with a pointer where a suffix was written before. */
  #name(): void {
    const m = this.#in;
    const starts: number[] = [];
    let at = this.#at;
    for (;;) {
      this.#need(at - this.#at + 1);
      const length = m[at] as number;
      if (length === 0) break;
      if (length > 63) throw new Uncompressible('a pointer or an extended label');
      starts.push(at);
      at += 1 + length;
    }
    const end = at + 1;
    for (const start of starts) {
      const key = keyOf(m, start, end);
      const earlier = this.#seen.get(key);
      const here = this.#to + (start - this.#at);
      if (earlier !== undefined) {
        this.#out.writeUInt16BE(0xc000 | earlier, here);
        this.#to = here + 2;
        this.#at = end;
        return;
      }
      if (here <= MAX_POINTER) this.#seen.set(key, here);
      // Nothing below this label matched yet: keep copying label by label.
      const labelEnd = start + 1 + (m[start] as number);
      m.copy(this.#out, here, start, labelEnd);
    }
    this.#to += end - this.#at;
    this.#out[this.#to - 1] = 0;
    this.#at = end;
  }

  #copy(n: number): void {
    this.#need(n);
    this.#in.copy(this.#out, this.#to, this.#at, this.#at + n);
    this.#at += n;
    this.#to += n;
  }

  #need(n: number): void {
    if (this.#at + n > this.#in.length) throw new Uncompressible('a record runs off the message');
  }
}

/**
 * The message with its names compressed (RFC 1035 4.1.4): owner names, and
 * names in the RDATA of the RFC 1035 types (NS, CNAME, SOA, MX, PTR...). A
 * message of any other shape (pointers already, extended labels) comes back
 * unchanged.
 */
export function compress(message: Buffer): Buffer {
  try {
    return new Compressor(message).run();
  } catch (err) {
    if (err instanceof Uncompressible) return message;
    throw err;
  }
}
