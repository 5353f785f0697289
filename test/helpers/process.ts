import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitFor } from './poll.js';

/** The built CLI: process tests run what users run. */
export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
/** The repository root. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Runs `meridian ARGS` to completion; `env` is added to (or, a value undefined, removed from) this process's environment. */
export function runCli(args: string[], timeoutMs = 15_000, env: Record<string, string | undefined> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`meridian ${args.join(' ')} did not finish in ${timeoutMs}ms`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A `meridian start`/`demo` process whose JSON log lines are collected. */
export interface MeridianProcess {
  readonly child: ChildProcess;
  readonly logs: Record<string, unknown>[];
  readonly proxyPort: number;
  readonly adminPort: number;
  /** What it wrote to stderr so far. */
  stderr(): string;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

/** Spawns `meridian ARGS` (under an open-file limit of `openFiles` when given, with `env` added) and waits for its "meridian started" log line. */
export async function spawnMeridian(args: string[], options: { openFiles?: number; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<MeridianProcess> {
  const command =
    options.openFiles === undefined
      ? [process.execPath, CLI, ...args]
      : ['bash', '-c', `ulimit -n ${options.openFiles} && exec "$0" "$@"`, process.execPath, CLI, ...args];
  const child = spawn(command[0] as string, command.slice(1), { cwd: options.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  let buffered = '';
  child.stdout.on('data', (d: Buffer) => {
    buffered += d.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const started = await waitFor(() => {
    if (child.exitCode !== null) throw new Error(`meridian exited with ${child.exitCode}: ${stderr}`);
    return logs.find((l) => l.msg === 'meridian started');
  }, 'meridian to start', 15_000);
  const port = (key: string): number => (started[key] as { port: number }).port;
  return {
    child,
    logs,
    proxyPort: port('proxy'),
    adminPort: port('admin'),
    stderr: () => stderr,
    async stop(signal = 'SIGTERM', timeoutMs = 15_000) {
      if (child.exitCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
