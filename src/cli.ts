#!/usr/bin/env node
import { UsageError } from './cli/args.js';
import { USAGE } from './cli/help.js';
import { applyCommand } from './cli/apply.js';
import { drainCommand } from './cli/drain.js';
import { getCommand } from './cli/get.js';
import { readyCommand } from './cli/ready.js';
import { startCommand } from './cli/start.js';
import { statusCommand } from './cli/status.js';
import { weightsCommand } from './cli/weights.js';
import { validateCommand } from './cli/validate.js';
import { ConfigError, formatIssue } from './config/issues.js';
import { ConflictError } from './store/etcd-writer.js';

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
  const run = COMMANDS[command];
  if (run === undefined) throw new UsageError(`unknown command "${command}"`);
  try {
    return await run(rest);
  } catch (err) {
    if (err instanceof UsageError) throw new UsageError(`${command}: ${err.message}`);
    throw err;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`meridian: ${err.message}\nRun "meridian --help" for usage.\n`);
      process.exitCode = 2;
    } else if (err instanceof ConfigError) {
      for (const issue of err.issues) process.stderr.write(`${formatIssue(issue)}\n`);
      process.exitCode = 1;
    } else if (err instanceof ConflictError) {
      process.stderr.write(`meridian: ${err.message}\n`);
      process.exitCode = 1;
    } else {
      const e = err as NodeJS.ErrnoException;
      process.stderr.write(`meridian: ${e.code === 'EADDRINUSE' ? `address already in use: ${e.message}` : (e.stack ?? String(err))}\n`);
      process.exitCode = 1;
    }
  },
);
