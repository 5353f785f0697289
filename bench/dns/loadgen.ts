/**
 * A closed-loop DNS-over-UDP load generator: `--outstanding` queries in flight
 * at all times, spread over `--sockets` dgram sockets, for `--seconds`. Each
 * answer (or a timeout, counted lost) sends the next query at once. Queries
 * cycle through a dnsperf-format file (`name type` per line), optionally each
 * with an ECS option. Prints one JSON line (`LoadgenReport`) to stdout.
 *
 * It gives what dnsperf does not: latency percentiles. Being Node, it costs
 * more CPU per query than dnsperf, so on a small machine it may be the
 * bottleneck; the bench reports dnsperf's figure as the throughput.
 *
 *   node dist-bench/dns/loadgen.js --port 5353 --queries q.txt --seconds 5
 */
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import dnsPacket, { type Packet, type RecordType } from 'dns-packet';
import { benchArgs, positiveInt } from '../lib/args.js';
import { ednsClientSubnet } from './probe.js';
import { parseSubnet, type Subnet } from './zone.js';

/** What one loadgen run measured (its stdout, as JSON). */
export interface LoadgenReport {
  readonly sent: number;
  /** Answers to queries still outstanding, over the whole run. */
  readonly answered: number;
  /** Queries not answered within the timeout, including those outstanding at the end. */
  readonly lost: number;
  /** Answers that came after their query was counted lost, or with an id not in flight. */
  readonly stray: number;
  readonly sendErrors: number;
  /** Answers received within the timed window, per second of it. */
  readonly qps: number;
  readonly avgMs: number;
  readonly stddevMs: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly avgResponseBytes: number;
  readonly truncated: number;
  readonly rcodes: Readonly<Record<string, number>>;
}

/** Latency histogram resolution and range: 10 µs buckets up to 2 s. */
const BUCKET_MS = 0.01;
const BUCKETS = 200_000;
/** Ids carry the slot in the low byte, so a socket holds at most 256 queries in flight. */
const MAX_PER_SOCKET = 256;
const SWEEP_MS = 50;
const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

/** One query in flight: its own send buffer (reused only once its query is over) and its generation. */
interface Slot {
  readonly socket: Socket;
  readonly index: number;
  readonly buf: Buffer;
  length: number;
  generation: number;
  /** performance.now() when sent; 0 when idle. */
  sentAt: number;
}

function encodeTemplate(line: string, ecs: Subnet | null): Buffer {
  const [name, type = 'A'] = line.trim().split(/\s+/);
  if (name === undefined || name === '') throw new Error(`bad query line ${JSON.stringify(line)}`);
  const packet: Packet = { type: 'query', id: 0, flags: 0, questions: [{ name, type: type as RecordType, class: 'IN' }] };
  if (ecs !== null) packet.additionals = [ednsClientSubnet(ecs)];
  return dnsPacket.encode(packet);
}

function percentileMs(histogram: Uint32Array, count: number, p: number): number {
  if (count === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * count));
  let seen = 0;
  for (let i = 0; i < histogram.length; i++) {
    seen += histogram[i] as number;
    if (seen >= rank) return (i + 1) * BUCKET_MS;
  }
  return BUCKETS * BUCKET_MS;
}

async function main(): Promise<void> {
  const args = benchArgs(['host', 'port', 'queries', 'seconds', 'sockets', 'outstanding', 'timeout-ms', 'ecs']);
  const host = args.host ?? '127.0.0.1';
  const port = positiveInt('port', args.port, 53);
  const seconds = positiveInt('seconds', args.seconds, 5);
  const socketCount = positiveInt('sockets', args.sockets, 4);
  const outstanding = positiveInt('outstanding', args.outstanding, 100);
  const timeoutMs = positiveInt('timeout-ms', args['timeout-ms'], 1_000);
  const ecs = args.ecs === undefined ? null : parseSubnet(args.ecs);
  if (args.ecs !== undefined && ecs === null) throw new Error(`--ecs: expected an IPv4 subnet such as 10.2.3.0/24, got ${JSON.stringify(args.ecs)}`);
  if (args.queries === undefined) throw new Error('--queries FILE is required (dnsperf format: "name type" per line)');
  if (outstanding > socketCount * MAX_PER_SOCKET) throw new Error(`--outstanding: at most ${MAX_PER_SOCKET} per socket`);
  const lines = readFileSync(args.queries, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith(';'));
  const templates = lines.map((l) => encodeTemplate(l, ecs));
  if (templates.length === 0) throw new Error(`${args.queries} holds no queries`);
  const maxLength = Math.max(...templates.map((t) => t.length));

  const histogram = new Uint32Array(BUCKETS);
  const rcodes = new Array<number>(16).fill(0);
  let sent = 0;
  let answered = 0;
  let answeredInWindow = 0;
  let lost = 0;
  let stray = 0;
  let sendErrors = 0;
  let truncated = 0;
  let responseBytes = 0;
  let sumMs = 0;
  let sumSquaresMs = 0;
  let maxMs = 0;
  let next = 0;
  let running = true;
  let windowEnd = Number.POSITIVE_INFINITY;

  const sockets: Socket[] = [];
  const slotsBySocket: Slot[][] = [];

  const send = (slot: Slot): void => {
    const template = templates[next] as Buffer;
    next = next + 1 === templates.length ? 0 : next + 1;
    template.copy(slot.buf);
    slot.length = template.length;
    slot.generation = (slot.generation + 1) & 0xff;
    slot.buf.writeUInt16BE((slot.generation << 8) | slot.index, 0);
    slot.sentAt = performance.now();
    sent++;
    slot.socket.send(slot.buf, 0, slot.length, port, host);
  };

  for (let s = 0; s < socketCount; s++) {
    const socket = createSocket('udp4');
    const slots: Slot[] = [];
    sockets.push(socket);
    slotsBySocket.push(slots);
    socket.on('error', () => {
      // A failed send leaves its slot in flight: the sweep counts it lost and sends anew.
      sendErrors++;
    });
    socket.on('message', (msg: Buffer) => {
      const now = performance.now();
      if (msg.length < 12) {
        stray++;
        return;
      }
      const id = msg.readUInt16BE(0);
      const slot = slots[id & 0xff];
      if (slot === undefined || slot.sentAt === 0 || slot.generation !== id >> 8) {
        stray++;
        return;
      }
      const ms = now - slot.sentAt;
      const bucket = Math.min(BUCKETS - 1, Math.floor(ms / BUCKET_MS));
      histogram[bucket] = (histogram[bucket] as number) + 1;
      sumMs += ms;
      sumSquaresMs += ms * ms;
      if (ms > maxMs) maxMs = ms;
      answered++;
      if (now <= windowEnd) answeredInWindow++;
      const rcode = (msg[3] as number) & 0x0f;
      rcodes[rcode] = (rcodes[rcode] as number) + 1;
      if (((msg[2] as number) & 0x02) !== 0) truncated++;
      responseBytes += msg.length;
      if (running) send(slot);
      else slot.sentAt = 0;
    });
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    try {
      socket.setRecvBufferSize(4 * 1024 * 1024);
    } catch {
      // the kernel caps it; the default still holds far more than our in-flight queries
    }
  }
  for (let i = 0; i < outstanding; i++) {
    const s = i % socketCount;
    const slots = slotsBySocket[s] as Slot[];
    slots.push({ socket: sockets[s] as Socket, index: slots.length, buf: Buffer.alloc(maxLength), length: 0, generation: 0, sentAt: 0 });
  }

  const sweep = setInterval(() => {
    const now = performance.now();
    for (const slots of slotsBySocket) {
      for (const slot of slots) {
        if (slot.sentAt === 0 || now - slot.sentAt < timeoutMs) continue;
        lost++;
        if (running) send(slot);
        else slot.sentAt = 0;
      }
    }
  }, SWEEP_MS);

  const start = performance.now();
  windowEnd = start + seconds * 1000;
  for (const slots of slotsBySocket) for (const slot of slots) send(slot);
  await sleep(seconds * 1000);
  running = false;
  const drainDeadline = performance.now() + timeoutMs + SWEEP_MS;
  while (performance.now() < drainDeadline && slotsBySocket.some((slots) => slots.some((slot) => slot.sentAt !== 0))) await sleep(10);
  clearInterval(sweep);
  for (const slots of slotsBySocket) for (const slot of slots) if (slot.sentAt !== 0) lost++;
  for (const socket of sockets) socket.close();

  const mean = answered === 0 ? Number.NaN : sumMs / answered;
  const named: Record<string, number> = {};
  rcodes.forEach((n, code) => {
    if (n > 0) named[RCODE_NAMES[code] ?? `RCODE${code}`] = n;
  });
  const report: LoadgenReport = {
    sent,
    answered,
    lost,
    stray,
    sendErrors,
    qps: answeredInWindow / seconds,
    avgMs: mean,
    stddevMs: answered === 0 ? Number.NaN : Math.sqrt(Math.max(0, sumSquaresMs / answered - mean * mean)),
    p50Ms: percentileMs(histogram, answered, 50),
    p90Ms: percentileMs(histogram, answered, 90),
    p99Ms: percentileMs(histogram, answered, 99),
    maxMs,
    avgResponseBytes: answered === 0 ? 0 : responseBytes / answered,
    truncated,
    rcodes: named,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/dns/loadgen: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
