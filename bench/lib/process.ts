import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, readdirSync, readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { get } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

/** A process started for a bench, with its output kept for error reports. */
export interface BenchProcess {
  readonly name: string;
  readonly child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** A process's stdout: kept (its last 64 KiB shown when it fails), discarded (/dev/null), or a descriptor of the caller's. */
export type StdoutChoice = 'keep' | 'discard' | number;

/**
 * Starts a program; its stdout and stderr are kept (the last 64 KiB) rather
 * than printed. `stdout: 'discard'` sends stdout to /dev/null instead, and a
 * descriptor sends it there (a program whose stdout output is part of what is
 * measured).
 */
export function startProcess(name: string, command: string, args: readonly string[], options: { stdout?: StdoutChoice } = {}): BenchProcess {
  const stdout = options.stdout ?? 'keep';
  const child = spawn(command, args, { stdio: ['ignore', stdout === 'keep' ? 'pipe' : stdout === 'discard' ? 'ignore' : stdout, 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-65_536);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.on('error', (err) => keep(Buffer.from(`${err.message}\n`)));
  return {
    name,
    child,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const done = await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]);
      if (!done) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port; throws with the process output otherwise. */
export async function waitForPort(proc: BenchProcess, port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null) throw new Error(`${proc.name} exited with ${proc.child.exitCode}:\n${proc.output()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await sleep(50);
  }
  throw new Error(`${proc.name} did not listen on ${port} within ${timeoutMs}ms:\n${proc.output()}`);
}

function statusField(pid: number, field: string): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return match === null ? 0 : Number(match[1]) * 1024;
}

function children(pid: number): number[] {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return text === '' ? [] : text.split(/\s+/).map(Number);
  } catch {
    return [];
  }
}

/** A process and all its descendants (nginx and HAProxy fork workers, Meridian its worker processes), parents first. */
export function treePids(pid: number): number[] {
  const pids: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift() as number;
    pids.push(p);
    queue.push(...children(p));
  }
  return pids;
}

/** Resident memory in bytes of one process; 0 once it is gone. */
export function processRss(pid: number): number {
  try {
    return statusField(pid, 'VmRSS');
  } catch {
    return 0;
  }
}

/** Resident memory in bytes of a process and all its descendants. */
export function treeRss(pid: number): number {
  return treePids(pid).reduce((total, p) => total + processRss(p), 0);
}

/** Open file descriptors of one process (entries of /proc/PID/fd); 0 once it is gone. */
export function openFds(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/** CPU time in milliseconds (user + system) used so far by one process; 0 once it is gone. */
export function processCpuMs(pid: number): number {
  const ticksPerSecond = 100; // USER_HZ on Linux
  try {
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond;
  } catch {
    return 0;
  }
}

/** CPU time in milliseconds (user + system) used so far by a process and all its descendants. */
export function treeCpuMs(pid: number): number {
  return treePids(pid).reduce((total, p) => total + processCpuMs(p), 0);
}

/** Asks the kernel for a free loopback TCP port. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The first of `names` found as an executable on PATH (or in /usr/sbin), else null. */
export function findProgram(...names: string[]): string | null {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin'];
  for (const name of names) {
    for (const dir of dirs) {
      if (dir === '') continue;
      const path = `${dir}/${name}`;
      try {
        accessSync(path, constants.X_OK);
        return path;
      } catch {
        // not here
      }
    }
  }
  return null;
}

/** Resolves once GET /readyz on the admin port answers 200; throws with Meridian's output otherwise. */
export async function waitReady(meridian: BenchProcess, adminPort: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (meridian.child.exitCode !== null) throw new Error(`meridian exited with ${meridian.child.exitCode}:\n${meridian.output()}`);
    const status = await new Promise<number>((resolve) => {
      const req = get({ host: '127.0.0.1', port: adminPort, path: '/readyz', timeout: 1_000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(0));
    });
    if (status === 200) return;
    await sleep(50);
  }
  throw new Error(`meridian was not ready within ${timeoutMs}ms:\n${meridian.output()}`);
}
