#!/usr/bin/env node
import { UsageError } from './cli/args.js';
import { USAGE } from './cli/help.js';
import { applyCommand } from './cli/apply.js';
import { drainCommand } from './cli/drain.js';
import { debugWanted, describeFailure } from './cli/failure.js';
import { getCommand } from './cli/get.js';
import { readyCommand } from './cli/ready.js';
import { startCommand } from './cli/start.js';
import { statusCommand } from './cli/status.js';
import { versionLine } from './cli/version.js';
import { weightsCommand } from './cli/weights.js';
import { validateCommand } from './cli/validate.js';

const COMMANDS: Readonly<Record<string, (argv: readonly string[]) => Promise<number>>> = {
  start: (argv) => startCommand(argv, false),
  demo: (argv) => startCommand(argv, true),
  validate: validateCommand,
  apply: applyCommand,
  get: getCommand,
  weights: weightsCommand,
  drain: (argv) => drainCommand(argv, true),
  undrain: (argv) => drainCommand(argv, false),
  status: statusCommand,
  ready: readyCommand,
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
