import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitFor } from './poll.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/upstream-process.mjs', import.meta.url));

/** An upstream running in its own process: it can be killed or frozen for real. */
export interface UpstreamProcess {
  readonly label: string;
  readonly port: number;
  readonly address: string;
  readonly child: ChildProcess;
  /** SIGKILL: the process and its sockets vanish at once. */
  kill(): Promise<void>;
  /** SIGSTOP: the process stops answering but its sockets stay open. */
  freeze(): void;
  /** SIGCONT after freeze(). */
  thaw(): void;
}

/** Starts test/fixtures/upstream-process.mjs on `port` (0: any free port). */
export async function startUpstreamProcess(label: string, port = 0): Promise<UpstreamProcess> {
  const child = spawn(process.execPath, [FIXTURE, label, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const bound = await waitFor(() => {
    if (child.exitCode !== null) throw new Error(`upstream ${label} exited with ${child.exitCode}`);
    const m = /listening (\d+)/.exec(out);
    return m === null ? undefined : Number(m[1]);
  }, `upstream ${label} to listen`);
  let frozen = false;
  return {
    label,
    port: bound,
    address: `127.0.0.1:${bound}`,
    child,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    freeze() {
      frozen = true;
      child.kill('SIGSTOP');
    },
    thaw() {
      if (frozen) child.kill('SIGCONT');
      frozen = false;
    },
  };
}
