import type { z } from 'zod';

/**
 * Why a configuration was refused, for metrics: it could not be read, it is not
 * YAML/JSON, it fails its schema, it names something that is not there, or it
 * holds no routing table at all.
 */
export type RejectReason = 'unreadable' | 'syntax' | 'schema' | 'reference' | 'empty';

/** One configuration problem, reported as `path: message`. */
export interface ConfigIssue {
  readonly path: string;
  readonly message: string;
  /** The kind of problem; `schema` when not given. */
  readonly reason?: RejectReason;
}

/** The kind of an issue (`schema` unless it says otherwise). */
export function reasonOf(issue: ConfigIssue): RejectReason {
  return issue.reason ?? 'schema';
}

/** Thrown when a configuration cannot be used; carries every problem found, not just the first. */
export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** Formats an issue as `path: message` (just the message when the path is empty). */
export function formatIssue(issue: ConfigIssue): string {
  return issue.path === '' ? issue.message : `${issue.path}: ${issue.message}`;
}

/** Joins path segments as `a.b[2].c`, prefixed with `base` when given. */
export function joinPath(base: string, segments: readonly PropertyKey[]): string {
  let out = base;
  for (const segment of segments) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? String(segment) : `.${String(segment)}`;
  }
  return out;
}

/** Converts zod issues into `path: message` issues; unknown keys get one issue each, at the key. */
export function fromZodIssues(issues: readonly z.core.$ZodIssue[], base = ''): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: joinPath(base, [...issue.path, key]), message: 'unknown field' });
    } else if (issue.code === 'invalid_union' && issue.errors.length > 0 && issue.errors.every((e) => e.length > 0)) {
      // Report the alternative that got furthest: its issues are the useful ones.
      const best = [...issue.errors].sort((a, b) => pathDepth(b) - pathDepth(a))[0] as z.core.$ZodIssue[];
      out.push(...fromZodIssues(best, joinPath(base, issue.path)));
    } else {
      out.push({ path: joinPath(base, issue.path), message: issue.message });
    }
  }
  return out;
}

function pathDepth(issues: readonly z.core.$ZodIssue[]): number {
  return Math.max(...issues.map((i) => i.path.length + (i.code === 'invalid_type' ? 0 : 0.5)));
}
