/**
 * A client process of bench/connections, started with `fork`: holds its share
 * of the keep-alive connections from its own source address and does what the
 * bench asks over IPC (open, check, run, close). Exits when the bench goes away.
 */
import { performance } from 'node:perf_hooks';
import { HeldConnection, RequestError } from './connection.js';
import { SLOW_KEPT, SLOW_MS, type ClientCommand, type ClientReply, type OpenCommand, type RunCommand } from './protocol.js';

const REQUEST = Buffer.from('GET / HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: meridian-bench-connections\r\n\r\n');

const held: HeldConnection[] = [];

function reply(message: ClientReply): void {
  process.send?.(message);
}

function count(errors: Record<string, number>, err: unknown): void {
  const kind = err instanceof RequestError ? err.kind : err instanceof Error ? err.message : String(err);
  errors[kind] = (errors[kind] ?? 0) + 1;
}

/** Opens the connections `concurrency` at a time, so that the listen backlog never overflows into SYN retries. */
async function openAll(cmd: OpenCommand): Promise<void> {
  const started = performance.now();
  const errors: Record<string, number> = {};
  let next = 0;
  const opener = async (): Promise<void> => {
    while (next < cmd.count) {
      next++;
      try {
        held.push(await HeldConnection.open(cmd.port, cmd.localAddress, REQUEST, cmd.timeoutMs));
      } catch (err) {
        count(errors, err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(cmd.concurrency, cmd.count) }, opener));
  reply({ type: 'opened', held: held.length, errors, ms: performance.now() - started });
}

/**
 * Every connection sends its first request at a random time within one mean
 * gap, then its next one a random 0.5-1.5 mean gaps after each answer: the
 * total rate is steady from the start, and every connection sends within the
 * first gap.
 */
async function run(cmd: RunCommand): Promise<void> {
  const latenciesMs: number[] = [];
  const slowSentAtMs: number[] = [];
  const errors: Record<string, number> = {};
  const live = held.filter((c) => c.open);
  const before = new Map(live.map((c) => [c, c.requests]));
  const meanGapMs = (live.length / cmd.ratePerSec) * 1000;
  const start = performance.now();
  const deadline = start + cmd.seconds * 1000;
  const drive = async (conn: HeldConnection): Promise<void> => {
    let gapMs = Math.random() * meanGapMs;
    while (conn.open) {
      await new Promise((resolve) => setTimeout(resolve, gapMs));
      if (performance.now() >= deadline || !conn.open) return;
      const sentAt = performance.now();
      try {
        const latencyMs = await conn.send(cmd.timeoutMs);
        latenciesMs.push(latencyMs);
        if (latencyMs >= SLOW_MS && slowSentAtMs.length < SLOW_KEPT) slowSentAtMs.push(sentAt - start);
      } catch (err) {
        count(errors, err);
      }
      gapMs = meanGapMs * (0.5 + Math.random());
    }
  };
  await Promise.all(live.map(drive));
  const connectionsUsed = live.filter((c) => c.requests > (before.get(c) ?? 0)).length;
  reply({ type: 'ran', latenciesMs, slowSentAtMs, errors, connectionsUsed, open: held.filter((c) => c.open).length });
}

async function handle(cmd: ClientCommand): Promise<void> {
  switch (cmd.type) {
    case 'open':
      await openAll(cmd);
      return;
    case 'check':
      reply({ type: 'checked', open: held.filter((c) => c.open).length, closedByServer: held.filter((c) => c.closedByServer).length });
      return;
    case 'run':
      await run(cmd);
      return;
    case 'close':
      for (const c of held) c.close();
      // The bench disconnects once it has this reply; the process exits then.
      reply({ type: 'closed' });
      return;
  }
}

process.on('message', (cmd: ClientCommand) => {
  handle(cmd).catch((err: unknown) => {
    process.stderr.write(`client: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
});
// The bench went away (or is done): nothing is left to hold the connections for.
process.on('disconnect', () => process.exit(0));
