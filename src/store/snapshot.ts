import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { TableSource } from '../routing/table.js';

/** The last routing table that applied cleanly, as kept on disk. */
export interface SnapshotFile {
  readonly format: 1;
  /** Where the table came from when it was saved. */
  readonly source: Exclude<TableSource, 'snapshot'>;
  /** Which source exactly (`file:/abs/routes.yaml`, `etcd:/meridian/`): a snapshot only stands in for its own origin. */
  readonly origin: string;
  readonly revision: number;
  readonly savedAt: string;
  /** The routing document (regions, services, routes) as it was applied. */
  readonly document: unknown;
}

/** What is saved: the snapshot's fields, with the document already serialised as JSON. */
export type SnapshotToWrite = Omit<SnapshotFile, 'format' | 'savedAt' | 'document'> & { readonly documentJson: string | Uint8Array };

/**
 * Writes the snapshot atomically: a temporary file in the same directory, then
 * a rename. The document arrives serialised, so a large table costs no
 * stringify on the event loop.
 */
export async function writeSnapshot(path: string, snapshot: SnapshotToWrite): Promise<void> {
  const { documentJson, ...fields } = snapshot;
  const head = JSON.stringify({ format: 1, savedAt: new Date().toISOString(), ...fields });
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  const document = typeof documentJson === 'string' ? Buffer.from(documentJson) : documentJson;
  await writeFile(temp, Buffer.concat([Buffer.from(`${head.slice(0, -1)},"document":`), document, Buffer.from('}\n')]), { mode: 0o600 });
  await rename(temp, path);
}

/** Reads a snapshot; null when the file is missing. Throws when it exists but is not a snapshot. */
export async function readSnapshot(path: string): Promise<SnapshotFile | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const parsed = JSON.parse(text) as Partial<SnapshotFile>;
  if (parsed.format !== 1 || (parsed.source !== 'file' && parsed.source !== 'etcd') || typeof parsed.revision !== 'number' || typeof parsed.origin !== 'string') {
    throw new Error(`${path} is not a Meridian snapshot (format 1)`);
  }
  return parsed as SnapshotFile;
}
