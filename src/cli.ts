#!/usr/bin/env node
import { UsageError } from './cli/args.js';
import { USAGE } from './cli/help.js';
import { debugWanted, describeFailure } from './cli/failure.js';
import { versionLine } from './cli/version.js';

// Each command loads its own modules when it runs: `ready` (a container health
// check every few seconds) and the etcd commands need not load the router.
const COMMANDS: Readonly<Record<string, (argv: readonly string[]) => Promise<number>>> = {
  start: async (argv) => (await import('./cli/start.js')).startCommand(argv, false),
  demo: async (argv) => (await import('./cli/start.js')).startCommand(argv, true),
  validate: async (argv) => (await import('./cli/validate.js')).validateCommand(argv),
  apply: async (argv) => (await import('./cli/apply.js')).applyCommand(argv),
  get: async (argv) => (await import('./cli/get.js')).getCommand(argv),
  weights: async (argv) => (await import('./cli/weights.js')).weightsCommand(argv),
  drain: async (argv) => (await import('./cli/drain.js')).drainCommand(argv, true),
  undrain: async (argv) => (await import('./cli/drain.js')).drainCommand(argv, false),
  status: async (argv) => (await import('./cli/status.js')).statusCommand(argv),
  rollout: async (argv) => (await import('./cli/rollout.js')).rolloutCommand(argv),
  ready: async (argv) => (await import('./cli/ready.js')).readyCommand(argv),
};

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE.main ?? '');
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write(versionLine());
    return 0;
  }
  const run = COMMANDS[command];
  if (run === undefined) throw new UsageError(`unknown command "${command}"`);
  try {
    return await run(rest);
  } catch (err) {
    if (err instanceof UsageError) throw new UsageError(`${command}: ${err.message}`);
    throw err;
  }
}

const argv = process.argv.slice(2);
const debug = debugWanted(argv);
// --debug is global: accepted before or after the command, so it is taken out before any command parses its flags.
main(argv.filter((arg) => arg !== '--debug')).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const { text, code } = describeFailure(err, debug);
    process.stderr.write(text);
    process.exitCode = code;
  },
);
