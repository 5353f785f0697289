import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rename, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { jsonString } from '../src/observability/json-text.js';
import { LineWriter } from '../src/observability/line-writer.js';
import { createLogger } from '../src/observability/logger.js';
import { formatAccessLine, type AccessRecord } from '../src/proxy/access-log.js';
import { waitFor } from './helpers/poll.js';
import { ROOT } from './helpers/process.js';

/** A logger whose warnings are collected. */
function collectingLogger(into: Record<string, unknown>[]) {
  return createLogger(
    'warn',
    new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n')) if (line !== '') into.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    }),
  );
}

t.test('jsonString: any UTF-16 string comes back from JSON.parse, written in pure ASCII', async (t) => {
  let every = '';
  for (let c = 0; c < 0x800; c++) every += String.fromCharCode(c);
  const samples = [every, 'plain /path?q=1', '\ud800 lone \udfff surrogates', 'quote " backslash \\ nul \0 del \x7f', 'ÿþ latin1 bytes', 'emoji 😀'];
  for (const s of samples) {
    const out = jsonString(s, 1_000_000);
    t.equal(JSON.parse(out), s, `round trip of ${JSON.stringify(s.slice(0, 20))}`);
    t.ok(/^[\x20-\x7e]*$/.test(out), 'printable ASCII only');
  }
  t.equal(jsonString('abc', 10), '"abc"', 'nothing to escape: copied as is');
  const cut = JSON.parse(jsonString('x'.repeat(100), 10)) as string;
  t.equal(cut, `${'x'.repeat(10)}...`, 'cut at the cap, marked');
  const cutEscaped = jsonString('\x01'.repeat(100), 20);
  t.ok(cutEscaped.length <= 20 + 6 + 5, 'escapes count toward the cap');
  t.equal(typeof JSON.parse(cutEscaped), 'string', 'never cut inside an escape');
});

t.test('an access line with the longest fields a client can send stays under PIPE_BUF', async (t) => {
  const huge = '\x01'.repeat(100_000);
  // The id: a trusted peer's safe token (at most 128 characters) or a UUID; names: at most 63 characters by schema.
  const record: AccessRecord = { type: 'request', id: 'i'.repeat(128), client: 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255', method: huge, host: huge, path: huge, protocol: 'HTTP/1.1', status: 200, bytesIn: 1e12, bytesOut: 1e12, durationMs: 123456.789, upstreamMs: 1.5, route: 'r'.repeat(63), service: 's'.repeat(63), version: 'v'.repeat(63), region: 'g'.repeat(63), endpoint: `https://${'e'.repeat(253)}:65535`, tries: 3, error: 'upstream-connect-failed' };
  const line = formatAccessLine(record, new Date(0).toISOString());
  t.ok(line.length <= 4096, `${line.length} bytes`);
  t.ok(line.endsWith('}\n'));
  t.match(JSON.parse(line), { status: 200, durationMs: 123456.789, upstreamMs: 1.5 });
});

t.test('to a file: every line, in order; moved away (as logrotate does) it is opened anew, with or without reopen()', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meridian-lines-'));
  const file = join(dir, 'access.log');
  const warnings: Record<string, unknown>[] = [];
  const writer = LineWriter.open({ target: file, maxBufferBytes: 1 << 20, onDrop: () => undefined, logger: collectingLogger(warnings) });
  for (let i = 0; i < 1000; i++) writer.write(`{"n":${i}}\n`);
  // A line longer than a chunk goes out whole, in a write of its own.
  const long = `{"long":"${'x'.repeat(100_000)}"}\n`;
  writer.write(long);
  writer.write('{"n":1000}\n');
  await waitFor(async () => (await readFile(file, 'utf8')).split('\n').length === 1003, 'the first thousand lines and two more');
  await rename(file, `${file}.1`);
  writer.reopen();
  writer.write('{"after":"reopen"}\n');
  await waitFor(async () => (await readFile(file, 'utf8').catch(() => '')) === '{"after":"reopen"}\n', 'the line after reopen() in a new file');
  // Moved without a signal: noticed by the path check (about once a second).
  await rename(file, `${file}.2`);
  writer.write('{"before":"check"}\n');
  await waitFor(async () => (await readFile(file, 'utf8').catch(() => null)) !== null, 'a new file after the move', 5_000);
  writer.write('{"after":"check"}\n');
  // Deleted: the same.
  await waitFor(async () => (await readFile(file, 'utf8')).includes('after'), 'the last line');
  await unlink(file);
  await waitFor(async () => (await readFile(file, 'utf8').catch(() => null)) !== null, 'the file made again after a delete', 5_000);
  writer.write('{"after":"delete"}\n');
  await writer.close(1000);
  const first = (await readFile(`${file}.1`, 'utf8')).split('\n').filter((l) => l !== '');
  t.same(first.map((l) => (JSON.parse(l) as { n?: number }).n ?? 'long'), [...Array(1000).keys(), 'long', 1000], 'the first file holds every line once, in order');
  t.equal(first[1000]?.length, long.length - 1, 'the long line whole');
  const all = (await readFile(`${file}.2`, 'utf8')) + (await readFile(file, 'utf8'));
  t.match(all, /after.*reopen/);
  t.match(all, /before.*check/);
  t.match(await readFile(file, 'utf8'), /after.*delete/, 'close() wrote what was queued');
  t.equal(writer.dropped, 0, 'nothing dropped');
  writer.write('{"late":1}\n');
  t.equal(writer.dropped, 1, 'a line after close is dropped and counted');
  t.same(warnings.filter((w) => w.level !== 'warn'), [], 'warnings carry level names');
});

/** Runs a child that writes `count` lines to its stdout through a LineWriter, and reports what happened on stderr. */
function child(count: number, onSpawn: ((c: ReturnType<typeof spawn>) => void) | null, fifoReader = 'exec sleep 15') {
  const script = `
    import { LineWriter } from ${JSON.stringify(join(ROOT, 'dist/observability/line-writer.js'))};
    import { createLogger } from ${JSON.stringify(join(ROOT, 'dist/observability/logger.js'))};
    let dropped = 0, ticks = 0;
    const tick = setInterval(() => ticks++, 5);
    const writer = LineWriter.open({ target: 'stdout', maxBufferBytes: 256 * 1024, onDrop: (n) => (dropped += n), logger: createLogger('warn', process.stderr) });
    const pad = 'x'.repeat(200);
    for (let i = 0; i < ${count}; i++) writer.write('{"n":' + i + ',"pad":"' + pad + '"}\\n');
    setTimeout(() => {
      clearInterval(tick);
      process.stderr.write(JSON.stringify({ report: true, dropped, ticks, buffered: writer.buffered }) + '\\n');
      process.exit(0);
    }, 600);
  `;
  return new Promise<{ code: number | null; reports: Record<string, unknown>[]; warnings: number }>((resolve) => {
    // onSpawn null: stdout is a pipe (a FIFO, as a shell pipeline or a container runtime gives) read by `fifoReader`.
    const c =
      onSpawn === null
        ? spawn('bash', ['-c', `exec "$0" --input-type=module -e "$1" > >(${fifoReader})`, process.execPath, script], { stdio: ['ignore', 'ignore', 'pipe'] })
        : spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    c.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    onSpawn?.(c);
    const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
    c.on('exit', (code) => {
      clearTimeout(timer);
      const lines = err.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ code, reports: lines.filter((l) => l.report === true), warnings: lines.filter((l) => l.level === 'warn').length });
    });
  });
}

t.test('a stalled reader: the buffer is capped, lines dropped and counted, one warning, the event loop runs on', async (t) => {
  // Nobody reads the pipe: after 64 KiB it is full; the writer waits on it without holding a thread, so the process can exit.
  const { code, reports, warnings } = await child(5000, null);
  t.equal(code, 0);
  const report = reports[0] as { dropped: number; ticks: number; buffered: number };
  t.ok(report.dropped > 0, `${report.dropped} of 5000 lines dropped`);
  t.ok(report.buffered <= 256 * 1024, `buffer held at ${report.buffered} bytes`);
  t.ok(report.ticks > 10, `timers kept firing (${report.ticks})`);
  t.equal(warnings, 1, 'one throttled warning');
});

t.test('a pipe that is read: every line arrives whole and in order', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meridian-lines-'));
  const out = join(dir, 'read.log');
  const { code, reports } = await child(1000, null, `exec cat > ${JSON.stringify(out)}`);
  t.equal(code, 0);
  t.equal((reports[0] as { dropped: number }).dropped, 0, 'nothing dropped');
  await waitFor(async () => (await readFile(out, 'utf8')).split('\n').length === 1001, 'all 1000 lines read', 5_000);
  const numbers = (await readFile(out, 'utf8'))
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (JSON.parse(l) as { n: number }).n);
  t.same(numbers, [...Array(1000).keys()], 'each line once, in order');
});

t.test('stdout closed by its reader (EPIPE): no crash, lines dropped and counted', async (t) => {
  const { code, reports } = await child(2000, (c) => c.stdout?.destroy());
  t.equal(code, 0, 'the process lives on and exits normally');
  t.ok((reports[0] as { dropped: number }).dropped > 0, 'lines that could not be written are counted');
});
