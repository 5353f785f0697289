// Prints the failed assertions of the last tap run, read back from .tap/test-results,
// so that the end of a long CI log names what failed (the coverage table comes after
// the failures in tap's own output).
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'

const root = '.tap/test-results'
const maxLines = 400

function resultFiles(dir) {
  let entries
  try {
    entries = readdirSync(dir)
  } catch {
    return []
  }
  return entries.flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? resultFiles(path) : path.endsWith('.tap') ? [path] : []
  })
}

function failures(text) {
  const lines = text.split('\n')
  const out = []
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]
    if (!/^\s*not ok /.test(line) || /#\s*(TODO|SKIP)/i.test(line)) continue
    out.push(line)
    const indent = line.length - line.trimStart().length
    // a subtest's own summary line repeats where it is; only the failed assertions' details are kept
    if (/# time=/.test(line) || lines[i + 1]?.trim() !== '---') continue
    for (let j = i + 1; j < lines.length && j < i + 40; j++) {
      out.push(lines[j])
      if (lines[j].trim() === '...' && lines[j].length - lines[j].trimStart().length <= indent + 2) break
    }
  }
  return out
}

const report = []
for (const file of resultFiles(root).sort()) {
  const found = failures(readFileSync(file, 'utf8'))
  if (found.length > 0) report.push(`## ${file.slice(root.length + 1).replace(/\.tap$/, '')}`, ...found, '')
}
if (report.length === 0) {
  process.stdout.write('\n== no failed assertion recorded in .tap/test-results (see the output above)\n')
} else {
  process.stdout.write('\n== failed tests (repeated from .tap/test-results)\n')
  process.stdout.write(report.slice(0, maxLines).join('\n') + '\n')
  if (report.length > maxLines) process.stdout.write(`... ${report.length - maxLines} more lines\n`)
}
