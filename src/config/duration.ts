const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;

/** Parses a duration such as `250ms`, `5s`, `1.5m` or `2h` into milliseconds; null when malformed. */
export function parseDurationMs(text: string): number | null {
  const match = DURATION.exec(text.trim());
  if (match === null) return null;
  const [, amount, unit] = match;
  const ms = Number(amount) * (UNIT_MS[unit as string] as number);
  return Number.isFinite(ms) ? Math.round(ms) : null;
}

/** Formats milliseconds back into the shortest exact duration string (`1500ms`, `5s`, `2m`). */
export function formatDuration(ms: number): string {
  if (ms !== 0 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms !== 0 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms !== 0 && ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
