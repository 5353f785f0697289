import type { Etcd3 } from 'etcd3';
import { formatDuration, parseDurationMs } from '../config/duration.js';
import { ConfigError } from '../config/issues.js';
import { isActive, type RolloutSpec } from '../config/rollout-schema.js';
import { commandMove, decide, type Command, type Move } from '../rollout/machine.js';
import { readStepFigures } from '../rollout/fleet-figures.js';
import type { VersionFigures } from '../rollout/gates.js';
import type { StepFigures } from '../rollout/machine.js';
import { moveEdit } from '../rollout/moves.js';
import { editRollout, parseRollout, readRollout, rolloutKey, type StoredRollout } from '../store/rollout-writer.js';
import type { StoredKey } from '../store/etcd-writer.js';
import { parseFlags, UsageError } from './args.js';
import { ETCD_FLAGS } from './etcd-flags.js';
import { withEtcd } from './etcd-session.js';
import { USAGE } from './help.js';
import { formatDocument, outputFormat, OUTPUT_FLAG } from './output.js';

const START_FLAGS = {
  to: { type: 'string' },
  from: { type: 'string' },
  steps: { type: 'string' },
  hold: { type: 'string' },
  'min-requests': { type: 'string' },
  'max-error-ratio': { type: 'string' },
  'max-error-rate': { type: 'string' },
  'max-latency-ratio': { type: 'string' },
  'latency-margin': { type: 'string' },
  'per-region': { type: 'boolean' },
} as const;

const COMMANDS: readonly Command[] = ['pause', 'resume', 'promote', 'abort'];

function number(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value)) throw new UsageError(`--${flag} must be a number, not "${text}"`);
  return value;
}

function duration(flag: string, text: string | undefined): string | undefined {
  if (text !== undefined && parseDurationMs(text) === null) throw new UsageError(`--${flag} must be a duration such as 30s or 5m, not "${text}"`);
  return text;
}

/** The rollout JSON `start` writes, from its flags (schema defaults fill the rest). */
function startSpec(values: Record<string, string | boolean | undefined>, from: string, to: string): Record<string, unknown> {
  const spec: Record<string, unknown> = { from, to };
  const steps = values.steps as string | undefined;
  if (steps !== undefined) {
    const list = steps.split(',').map((s) => s.trim());
    if (list.some((s) => !/^\d+$/.test(s))) throw new UsageError(`--steps must be whole percents separated by commas, such as 1,5,25,50,100, not "${steps}"`);
    spec.steps = list.map(Number);
  }
  const hold = duration('hold', values.hold as string | undefined);
  if (hold !== undefined) spec.hold = hold;
  const minRequests = number('min-requests', values['min-requests'] as string | undefined);
  if (minRequests !== undefined) spec.minRequests = minRequests;
  const gates: Record<string, unknown> = {};
  const put = (field: string, value: unknown): void => {
    if (value !== undefined) gates[field] = value;
  };
  put('maxErrorRatio', number('max-error-ratio', values['max-error-ratio'] as string | undefined));
  put('maxErrorRate', number('max-error-rate', values['max-error-rate'] as string | undefined));
  put('maxLatencyRatio', number('max-latency-ratio', values['max-latency-ratio'] as string | undefined));
  put('latencyMargin', duration('latency-margin', values['latency-margin'] as string | undefined));
  if (values['per-region'] === true) gates.perRegion = true;
  if (Object.keys(gates).length > 0) spec.gates = gates;
  return spec;
}

/** The service's versions and weights as stored. */
function versionsOf(stored: StoredKey): { versions: string[]; weights: Record<string, number> } {
  const spec = JSON.parse(stored.value) as { versions?: Record<string, unknown>; split?: { weights?: Record<string, number> } };
  return { versions: Object.keys(spec.versions ?? {}), weights: spec.split?.weights ?? {} };
}

/** The version other than `to` holding the most weight: where a rollout starts from unless --from says. */
function currentVersion(stored: StoredKey, to: string): string | undefined {
  const { versions, weights } = versionsOf(stored);
  return versions.filter((v) => v !== to).sort((a, b) => (weights[b] ?? 0) - (weights[a] ?? 0))[0];
}

async function start(client: Etcd3, prefix: string, service: string, values: Record<string, string | boolean | undefined>): Promise<string> {
  const to = values.to as string | undefined;
  if (to === undefined) throw new UsageError('start needs --to VERSION');
  const { rollout } = await editRollout(client, prefix, service, (current, stored) => {
    if (current !== null && isActive(current.spec.status?.state)) {
      throw new ConfigError([{ path: current.key, message: `a rollout of ${service} to ${current.spec.to} is ${current.spec.status?.state ?? 'starting'}; abort or promote it first` }]);
    }
    const from = (values.from as string | undefined) ?? currentVersion(stored, to);
    const { versions } = versionsOf(stored);
    for (const [flag, version] of [['to', to], ['from', from]] as const) {
      if (version === undefined || !versions.includes(version)) throw new ConfigError([{ path: `${prefix}services/${service}.versions`, message: `no version "${version ?? ''}" to roll out ${flag === 'to' ? 'to' : 'from'} (it has ${versions.join(', ')})` }]);
    }
    const raw = startSpec(values, from as string, to);
    const { spec } = parseRollout(rolloutKey(prefix, service), JSON.stringify(raw));
    const move = decide({ service, spec, rolloutRevision: 0, serviceRevision: 0 }, null, Date.now()) as Move;
    return moveEdit(service, raw, spec, stored, move);
  });
  return `rollout of ${service} started: ${rollout.from} -> ${rollout.to}, steps ${rollout.steps.join(',')} %, hold ${formatDuration(rollout.hold)}; ${rollout.to} takes ${rollout.steps[0]} %\n`;
}

async function command(client: Etcd3, prefix: string, service: string, what: Command): Promise<string> {
  const { rollout } = await editRollout(client, prefix, service, (current, stored) => {
    if (current === null) throw new ConfigError([{ path: rolloutKey(prefix, service), message: `no rollout of ${service}` }]);
    const move = commandMove(current.spec, what);
    if (typeof move === 'string') throw new ConfigError([{ path: current.key, message: move }]);
    return moveEdit(service, current.raw, current.spec, stored, move);
  });
  return `rollout of ${service}: ${rollout.status?.reason ?? what}\n`;
}

/** The status as lines for a person. */
function figureLine(version: string, f: VersionFigures): string {
  const rate = f.requests === 0 ? '-' : `${((f.errors / f.requests) * 100).toFixed(2)} %`;
  return `${version} ${f.requests} requests, ${rate} errors, p99 ${f.p99Ms === null ? '-' : `${f.p99Ms.toFixed(1)} ms`}`;
}

function statusLines(service: string, r: StoredRollout, nowMs: number, fleet: { figures: StepFigures; nodes: number } | null): string {
  const { spec } = r;
  const status = spec.status;
  const lines = [`rollout of ${service}: ${spec.from} -> ${spec.to}, steps ${spec.steps.join(',')} %`];
  if (status === undefined) {
    lines.push('state:    waiting for a node to start it');
  } else {
    lines.push(`state:    ${status.state} (${status.reason})`);
    lines.push(`step:     ${status.step + 1} of ${spec.steps.length}: ${spec.to} ${spec.steps[status.step]} %, ${spec.from} ${100 - (spec.steps[status.step] as number)} %`);
    if (status.state === 'running') {
      const left = Math.max(0, Date.parse(status.stepStartedAt) + spec.hold - nowMs);
      lines.push(`hold:     ${formatDuration(spec.hold)}, ${formatDuration(Math.ceil(left / 1000) * 1000)} left; at least ${spec.minRequests} requests to ${spec.to}`);
    }
    if (fleet !== null && status.state === 'running') {
      lines.push(`figures:  ${figureLine(spec.to, fleet.figures.to)} (this step, ${fleet.nodes} node${fleet.nodes === 1 ? '' : 's'} reporting)`);
      lines.push(`          ${figureLine(spec.from, fleet.figures.from)}`);
    }
    const b = status.baseline;
    if (b !== null) lines.push(`baseline: ${spec.from} ${(b.errorRate * 100).toFixed(2)} % errors, p99 ${b.p99Ms === null ? '-' : `${b.p99Ms.toFixed(1)} ms`} over ${b.requests} requests`);
  }
  const g = spec.gates;
  lines.push(`gates:    errors <= ${g.maxErrorRatio} x ${spec.from}'s and <= ${(g.maxErrorRate * 100).toFixed(2)} %; p99 <= ${g.maxLatencyRatio} x ${spec.from}'s (+${formatDuration(g.latencyMargin)})${g.perRegion ? ', per region' : ''}`);
  for (const h of status?.history.slice(-5) ?? []) lines.push(`  ${h.at}  ${h.result.padEnd(9)} ${h.reason}`);
  return `${lines.join('\n')}\n`;
}

async function showStatus(client: Etcd3, prefix: string, service: string, asked: string | undefined): Promise<string> {
  const format = outputFormat(asked);
  const r = await readRollout(client, prefix, service);
  if (r === null) throw new ConfigError([{ path: rolloutKey(prefix, service), message: `no rollout of ${service}` }]);
  const fleet = await readStepFigures(client, prefix, service, r.spec);
  const figures = fleet === null ? null : { nodes: fleet.nodes, from: fleet.figures.from, to: fleet.figures.to };
  return formatDocument(format, { service, key: r.key, revision: r.modRevision, rollout: r.raw, figures }, () => statusLines(service, r, Date.now(), fleet));
}

/**
 * `meridian rollout start|status|pause|resume|promote|abort SERVICE`: writes
 * the service's rollout object (and, when weights move, the service) in one
 * compare-and-swap transaction.
 */
export async function rolloutCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, { ...ETCD_FLAGS, ...OUTPUT_FLAG, ...START_FLAGS }, { min: 2, max: 2 });
  if (values.help === true) {
    process.stdout.write(USAGE.rollout ?? '');
    return 0;
  }
  const [what, service] = positionals as [string, string];
  const known = ['start', 'status', ...COMMANDS];
  if (!known.includes(what)) throw new UsageError(`unknown rollout command "${what}" (one of ${known.join(', ')})`);
  if (what !== 'start') {
    const stray = Object.keys(START_FLAGS).find((flag) => values[flag as keyof typeof values] !== undefined);
    if (stray !== undefined) throw new UsageError(`--${stray} belongs to rollout start`);
  }
  if (what !== 'status' && values.output !== undefined) throw new UsageError('-o belongs to rollout status');
  return withEtcd(values, async (client, prefix) => {
    let out: string;
    if (what === 'start') out = await start(client, prefix, service, values);
    else if (what === 'status') out = await showStatus(client, prefix, service, values.output);
    else out = await command(client, prefix, service, what as Command);
    process.stdout.write(out);
    return 0;
  });
}
