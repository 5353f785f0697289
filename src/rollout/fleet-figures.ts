import type { Etcd3 } from 'etcd3';
import type { RolloutSpec } from '../config/rollout-schema.js';
import type { StepFigures } from './machine.js';
import { mergeReports, parseReport, type StepReport } from './step-stats.js';

/** Where nodes publish their counts of a service's rollout step. */
export function statsPrefix(prefix: string, service: string): string {
  return `${prefix}rollout-stats/${service}/`;
}

/** The fleet's figures of a rollout's current step, merged from every node's report of that step; null before it starts. */
export async function readStepFigures(client: Etcd3, prefix: string, service: string, spec: RolloutSpec): Promise<{ figures: StepFigures; nodes: number } | null> {
  const status = spec.status;
  if (status === undefined) return null;
  const texts = Object.values(await client.getAll().prefix(statsPrefix(prefix, service)).strings());
  const id = { service, step: status.step, stepStartedAt: status.stepStartedAt };
  const reports = texts.map(parseReport).filter((r): r is StepReport => r !== null && r.step === id.step && r.stepStartedAt === id.stepStartedAt && r.service === service);
  return { figures: mergeReports(id, spec.from, spec.to, reports), nodes: reports.length };
}
