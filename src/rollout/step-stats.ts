import { DDSketch } from '@datadog/sketches-js';
import { z } from 'zod';
import type { StepFigures } from './machine.js';
import type { VersionFigures } from './gates.js';

/** Relative accuracy of the latency sketches: a p99 is known within 1 %, and every node's sketches merge exactly. */
const ACCURACY = 0.01;

/** One version's counts in one region over a step, on one node. */
interface Cell {
  requests: number;
  errors: number;
  readonly sketch: DDSketch;
}

/** Which step of which rollout a report counts: a node's counts of another step are never merged with this one's. */
export interface StepId {
  readonly service: string;
  readonly step: number;
  /** The step's start as the rollout's status writes it: a restarted step is a new one. */
  readonly stepStartedAt: string;
}

/** One version's figures as a node publishes them: counts, and the latency sketch in DDSketch's protobuf form, base64. */
export interface CellReport {
  readonly requests: number;
  readonly errors: number;
  readonly sketch: string;
}

/** What a node publishes for a step: per region, per version. */
export interface StepReport extends StepId {
  readonly node: string;
  readonly regions: Readonly<Record<string, Readonly<Record<string, CellReport>>>>;
}

/**
 * A node's outcomes of the requests of one rollout step, per region and
 * version: requests, errors (5xx and Meridian's own) and a latency sketch.
 */
export class StepCounter {
  readonly id: StepId;
  readonly #cells = new Map<string, Map<string, Cell>>();

  constructor(id: StepId) {
    this.id = id;
  }

  /** Counts one finished request. */
  record(version: string, region: string, error: boolean, durationMs: number): void {
    let byVersion = this.#cells.get(region);
    if (byVersion === undefined) {
      byVersion = new Map();
      this.#cells.set(region, byVersion);
    }
    let cell = byVersion.get(version);
    if (cell === undefined) {
      cell = { requests: 0, errors: 0, sketch: new DDSketch({ relativeAccuracy: ACCURACY }) };
      byVersion.set(version, cell);
    }
    cell.requests++;
    if (error) cell.errors++;
    cell.sketch.accept(Math.max(durationMs, 0.001));
  }

  /** The counts so far, as this node publishes them. */
  report(node: string): StepReport {
    const regions: Record<string, Record<string, CellReport>> = {};
    for (const [region, byVersion] of this.#cells) {
      const out: Record<string, CellReport> = {};
      for (const [version, cell] of byVersion) out[version] = { requests: cell.requests, errors: cell.errors, sketch: Buffer.from(cell.sketch.toProto()).toString('base64') };
      regions[region] = out;
    }
    return { ...this.id, node, regions };
  }
}

/** Merged figures of one version: counts summed, sketches merged. */
class Merged {
  requests = 0;
  errors = 0;
  readonly sketch = new DDSketch({ relativeAccuracy: ACCURACY });

  add(cell: CellReport, sketch: DDSketch | null): void {
    this.requests += cell.requests;
    this.errors += cell.errors;
    if (sketch !== null) this.sketch.merge(sketch);
  }

  figures(): VersionFigures {
    return { requests: this.requests, errors: this.errors, p99Ms: this.requests === 0 ? null : this.sketch.getValueAtQuantile(0.99) };
  }
}

function validCell(cell: CellReport): boolean {
  return Number.isSafeInteger(cell.requests) && Number.isSafeInteger(cell.errors) && cell.requests >= 0 && cell.errors >= 0 && cell.errors <= cell.requests && typeof cell.sketch === 'string';
}

function decode(text: string): DDSketch | null {
  try {
    const sketch = DDSketch.fromProto(Buffer.from(text, 'base64'));
    return sketch.count > 0 ? sketch : null;
  } catch {
    return null;
  }
}

/**
 * The fleet's figures of a step, from the reports of every node: only reports
 * of this very step count (a node still counting the previous one is left
 * out), and a report that cannot be read is skipped.
 */
export function mergeReports(id: StepId, from: string, to: string, reports: readonly StepReport[]): StepFigures {
  const totals = { from: new Merged(), to: new Merged() };
  const regions = new Map<string, { from: Merged; to: Merged }>();
  for (const report of reports) {
    if (report.service !== id.service || report.step !== id.step || report.stepStartedAt !== id.stepStartedAt) continue;
    for (const [region, byVersion] of Object.entries(report.regions)) {
      let merged = regions.get(region);
      if (merged === undefined) {
        merged = { from: new Merged(), to: new Merged() };
        regions.set(region, merged);
      }
      for (const [side, version] of [['from', from], ['to', to]] as const) {
        const cell = byVersion[version];
        if (cell === undefined || !validCell(cell)) continue;
        const sketch = cell.requests === 0 ? null : decode(cell.sketch);
        // A sketch that does not decode: this node's cell is left out rather than the step judged on garbage.
        if (cell.requests > 0 && sketch === null) continue;
        merged[side].add(cell, sketch);
        totals[side].add(cell, sketch);
      }
    }
  }
  return {
    from: totals.from.figures(),
    to: totals.to.figures(),
    regions: new Map([...regions].map(([region, m]) => [region, { from: m.from.figures(), to: m.to.figures() }])),
  };
}

const cellSchema = z.strictObject({ requests: z.int().min(0), errors: z.int().min(0), sketch: z.string().max(1_000_000) });
const reportSchema = z.strictObject({
  service: z.string(),
  step: z.int().min(0),
  stepStartedAt: z.string(),
  node: z.string(),
  regions: z.record(z.string(), z.record(z.string(), cellSchema)),
});

/** A node's published report, or null when the text is not one (a node of another version, or garbage). */
export function parseReport(text: string): StepReport | null {
  try {
    const parsed = reportSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
