/**
 * What bench/dns knows of a DNS server under test: a process answering on a
 * loopback port, and how to find a port free for both UDP and TCP.
 */
import { createSocket } from 'node:dgram';
import { freePort, type BenchProcess } from '../lib/process.js';

/** A DNS server started for the bench. */
export interface DnsServer {
  readonly name: string;
  /** What runs, for the notes under the table: processes, threads, how they share the port. */
  readonly description: string;
  /** Whether its answers are checked against DESIGN.md (Meridian) or only shown (gdnsd serves static data). */
  readonly judged: boolean;
  /** UDP and TCP on 127.0.0.1. */
  readonly port: number;
  /** The process whose CPU time and RSS are measured, with all its descendants. */
  readonly process: BenchProcess;
  /** Stops the server and everything started with it. */
  stop(): Promise<void>;
  /** Last resort on a signal: SIGKILL. */
  kill(): void;
}

/** A candidate that could not start, and why. */
export interface Unavailable {
  readonly name: string;
  readonly reason: string;
}

function udpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.once('error', () => {
      socket.close();
      resolve(false);
    });
    socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
  });
}

/** A loopback port free for TCP and UDP alike. */
export async function freeDnsPort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await freePort();
    if (await udpFree(port)) return port;
  }
  throw new Error('no port free for both TCP and UDP after 20 tries');
}

/** The last `lines` lines of a process's output, for an error message. */
export function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
