/**
 * The candidates of bench/dns along its workers axis: Meridian with N workers
 * (`meridian-Nw`) and gdnsd with N UDP threads (`gdnsd-Nt`) for each N asked,
 * started one after the other; the ones that cannot start are listed with why.
 */
import { findProgram } from '../lib/process.js';
import { gdnsdName, startGdnsd } from './gdnsd.js';
import { meridianName, startMeridian } from './meridian.js';
import type { DnsServer, Unavailable } from './server.js';

/** Every candidate name for the worker counts, in table order: Meridian's, then gdnsd's. */
export function candidateNames(workers: readonly number[]): string[] {
  return [...workers.map(meridianName), ...workers.map(gdnsdName)];
}

/** What to start and how long Meridian may take to answer. */
export interface CandidateOptions {
  readonly dir: string;
  readonly workers: readonly number[];
  /** Whether a candidate name is to run (`--only`). */
  readonly wanted: (name: string) => boolean;
  readonly waitMs: number;
  readonly log: (line: string) => void;
  /** Where each server goes as soon as it answers, so that a signal meanwhile kills it too. */
  readonly servers: DnsServer[];
}

/** Starts every wanted candidate into `options.servers`; one that fails to start is unavailable, and the bench goes on. */
export async function startCandidates(options: CandidateOptions): Promise<Unavailable[]> {
  const unavailable: Unavailable[] = [];
  const attempt = async (name: string, start: () => Promise<DnsServer>): Promise<void> => {
    try {
      const server = await start();
      options.log(`${name}: ${server.description}`);
      options.servers.push(server);
    } catch (err) {
      unavailable.push({ name, reason: (err as Error).message });
    }
  };
  for (const n of options.workers) {
    if (options.wanted(meridianName(n))) await attempt(meridianName(n), () => startMeridian(options.dir, options.waitMs, n));
  }
  const gdnsd = findProgram('gdnsd');
  for (const n of options.workers) {
    if (!options.wanted(gdnsdName(n))) continue;
    if (gdnsd === null) unavailable.push({ name: gdnsdName(n), reason: 'not installed (apt-get install gdnsd)' });
    else await attempt(gdnsdName(n), () => startGdnsd(gdnsd, options.dir, n));
  }
  return unavailable;
}
