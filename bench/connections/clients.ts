/**
 * The bench's side of its client processes: forks them, sends one command at
 * a time with a deadline for the reply, and stops or kills them.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ClientCommand, ClientReply } from './protocol.js';

const clientScript = fileURLToPath(new URL('./client.js', import.meta.url));

/** One forked client process. */
export class ClientProcess {
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  #stderr = '';

  constructor(readonly name: string) {
    this.#child = fork(clientScript, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    this.#child.stderr?.on('data', (chunk: Buffer) => {
      this.#stderr = (this.#stderr + chunk.toString()).slice(-16_384);
    });
    this.#exited = new Promise((resolve) => this.#child.once('exit', () => resolve()));
  }

  /** Sends `command` and resolves with the reply of type `expect`; rejects on exit or after `timeoutMs`. */
  ask<T extends ClientReply['type']>(command: ClientCommand, expect: T, timeoutMs: number): Promise<Extract<ClientReply, { type: T }>> {
    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        this.#child.off('message', onMessage);
        this.#child.off('exit', onExit);
      };
      const onMessage = (reply: ClientReply): void => {
        if (reply.type !== expect) return;
        cleanup();
        resolve(reply as Extract<ClientReply, { type: T }>);
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
        cleanup();
        reject(new Error(`${this.name} exited (${signal ?? code}) before answering ${command.type}:\n${this.#stderr}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.name} did not answer ${command.type} within ${timeoutMs} ms:\n${this.#stderr}`));
      }, timeoutMs);
      this.#child.on('message', onMessage);
      this.#child.once('exit', onExit);
      this.#child.send(command);
    });
  }

  /** Closes its connections, then lets it exit; SIGKILL when it does not within 10 s. */
  async stop(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null && this.#child.connected) {
      try {
        await this.ask({ type: 'close' }, 'closed', 10_000);
      } catch {
        // killed below
      }
      if (this.#child.connected) this.#child.disconnect();
    }
    const timer = setTimeout(() => this.kill(), 10_000);
    await this.#exited;
    clearTimeout(timer);
  }

  /** Last resort: SIGKILL at once. */
  kill(): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
  }
}
