import { execFile } from 'node:child_process';

/** One resource record as dig prints it. */
export interface DigRecord {
  readonly name: string;
  readonly ttl: number;
  readonly type: string;
  readonly data: string;
}

/** What dig showed of an answer. */
export interface DigResult {
  readonly status: string;
  readonly flags: ReadonlySet<string>;
  readonly answers: readonly DigRecord[];
  readonly authority: readonly DigRecord[];
  /** The ADDITIONAL section's records (the OPT pseudo-record is not among them). */
  readonly additional: readonly DigRecord[];
  /** EDNS version and UDP size of the answer's OPT, null when it had none. */
  readonly edns: { readonly version: number; readonly udp: number } | null;
  /** The CLIENT-SUBNET line: `address/source/scope`. */
  readonly subnet: string | null;
  /** `UDP` or `TCP`, as dig reports the transport of the final answer. */
  readonly transport: string | null;
  readonly raw: string;
}

function section(lines: readonly string[], title: string): DigRecord[] {
  const start = lines.indexOf(`;; ${title} SECTION:`);
  if (start < 0) return [];
  const records: DigRecord[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === '' || line.startsWith(';')) break;
    const [name, ttl, , type, ...data] = line.split(/\s+/);
    records.push({ name: name as string, ttl: Number(ttl), type: type as string, data: data.join(' ') });
  }
  return records;
}

/** Parses dig's default output. */
export function parseDig(raw: string): DigResult {
  const lines = raw.split('\n');
  const status = /status: ([A-Z0-9_]+)/.exec(raw)?.[1] ?? 'NO-ANSWER';
  const flags = new Set((/;; flags: ([a-z ]*);/.exec(raw)?.[1] ?? '').split(' ').filter((f) => f !== ''));
  const ednsMatch = /; EDNS: version: (\d+), flags:[^;]*; udp: (\d+)/.exec(raw);
  return {
    status,
    flags,
    answers: section(lines, 'ANSWER'),
    authority: section(lines, 'AUTHORITY'),
    additional: section(lines, 'ADDITIONAL'),
    edns: ednsMatch === null ? null : { version: Number(ednsMatch[1]), udp: Number(ednsMatch[2]) },
    subnet: /; CLIENT-SUBNET: (\S+)/.exec(raw)?.[1] ?? null,
    transport: /;; SERVER: \S+ \((UDP|TCP)\)/.exec(raw)?.[1] ?? null,
    raw,
  };
}

/** Runs the real `dig` against 127.0.0.1:port (one try, 2 s) and parses the answer. */
export function dig(port: number, args: readonly string[]): Promise<DigResult> {
  return new Promise((resolve, reject) => {
    execFile('dig', [`@127.0.0.1`, '-p', String(port), '+tries=1', '+time=2', '+nocookie', ...args], { timeout: 10_000 }, (err, stdout, stderr) => {
      // dig exits 9 when no server answered; the parsed status says so.
      if (err !== null && stdout === '') reject(new Error(`dig ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve(parseDig(stdout));
    });
  });
}

/** Runs `kdig` (Knot) the same way, for what dig cannot send. */
export function kdig(port: number, args: readonly string[]): Promise<DigResult> {
  return new Promise((resolve, reject) => {
    execFile('kdig', [`@127.0.0.1`, '-p', String(port), '+tries=1', '+time=2', ...args], { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err !== null && stdout === '') reject(new Error(`kdig ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve(parseDig(stdout));
    });
  });
}
