import { ConfigError, formatIssue } from '../config/issues.js';
import { ConflictError } from '../store/etcd-writer.js';
import { UsageError } from './args.js';

/** etcd did not answer: refused, unresolvable, or silent past the deadline. */
export class EtcdUnreachableError extends Error {
  override readonly name = 'EtcdUnreachableError';

  constructor(message: string, cause: unknown) {
    super(message, { cause });
  }
}

/** Whether --debug (anywhere on the command line) or MERIDIAN_DEBUG asks for stacks. */
export function debugWanted(argv: readonly string[]): boolean {
  const env = process.env.MERIDIAN_DEBUG;
  return argv.includes('--debug') || (env !== undefined && env !== '' && env !== '0' && env !== 'false');
}

/** The stack of an error and of its causes, for --debug. */
function stackOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const own = err.stack ?? `${err.name}: ${err.message}`;
  return err.cause === undefined ? own : `${own}\nCaused by: ${stackOf(err.cause)}`;
}

/** The one-line form of an unexpected error: its message, without the stack. */
function oneLine(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EADDRINUSE') return `address already in use: ${e.message}`;
  const first = err.message.split('\n')[0] ?? '';
  return err.name === 'Error' || err.name === '' ? first : `${err.name}: ${first}`;
}

/**
 * What a failed command prints on stderr, and its exit code: 2 for usage
 * mistakes, 1 otherwise; every problem of a configuration, else one line
 * (the stack too with --debug).
 */
export function describeFailure(err: unknown, debug: boolean): { text: string; code: number } {
  if (err instanceof UsageError) return { text: `meridian: ${err.message}\nRun "meridian --help" for usage.\n`, code: 2 };
  if (err instanceof ConfigError) return { text: err.issues.map((issue) => `${formatIssue(issue)}\n`).join(''), code: 1 };
  const line = `meridian: ${err instanceof ConflictError || err instanceof EtcdUnreachableError ? err.message : oneLine(err)}\n`;
  return { text: debug ? `${line}${stackOf(err)}\n` : line, code: 1 };
}
