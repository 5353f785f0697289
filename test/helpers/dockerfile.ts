import { readFileSync } from 'node:fs';

/** One Dockerfile instruction: its keyword (upper case), flags (`--name=value`) and arguments (exec form parsed from JSON). */
export interface Instruction {
  readonly keyword: string;
  readonly flags: Readonly<Record<string, string>>;
  /** Exec form (`["a", "b"]`) as the list; shell form split on white space. */
  readonly args: readonly string[];
  readonly execForm: boolean;
  /** Which build stage it belongs to (0 = the first FROM). */
  readonly stage: number;
}

/** Parses a Dockerfile: comments dropped, `\` continuations joined, flags and exec-form JSON taken apart. */
export function parseDockerfile(file: string): Instruction[] {
  const logical: string[] = [];
  let pending = '';
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    // Comment lines are dropped, also between continued lines (as Docker does).
    if (/^\s*#/.test(line)) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const whole = (pending + line).trim();
    pending = '';
    if (whole !== '') logical.push(whole);
  }
  let stage = -1;
  return logical.map((text) => {
    const keyword = text.split(/\s+/)[0] ?? '';
    let rest = text.slice(keyword.length).trim();
    const upper = keyword.toUpperCase();
    if (upper === 'FROM') stage++;
    const flags: Record<string, string> = {};
    for (let m = /^--([a-z-]+)=(\S+)\s*/.exec(rest); m !== null; m = /^--([a-z-]+)=(\S+)\s*/.exec(rest)) {
      flags[m[1] as string] = m[2] as string;
      rest = rest.slice(m[0].length);
    }
    // HEALTHCHECK's own arguments are followed by CMD and the command.
    if (upper === 'HEALTHCHECK' && rest.startsWith('CMD')) rest = rest.slice(3).trim();
    const execForm = rest.startsWith('[');
    const args = execForm ? (JSON.parse(rest) as string[]) : rest.split(/\s+/).filter((w) => w !== '');
    return { keyword: upper, flags, args, execForm, stage };
  });
}
