// Writing the configuration file so that it is never lost: the new text goes to a temporary
// file in the same directory, is fsynced, renamed over the old one, and the directory is
// fsynced (so the rename itself survives a power cut); a crash at any point leaves either the
// old file or the new one, never a torn one. The file being replaced is first kept in
// `backup/` beside it (as targetcli's /etc/target/backup/), the newest CONFIG_BACKUPS copies.
//
// write-file-atomic does the temporary file, its fsync and the rename (and keeps the old
// file's mode and owner); it does not fsync the directory, which is done here after it.

import { mkdir, open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import writeFileAtomic from 'write-file-atomic';

/** How many earlier versions `backup/` keeps. */
export const CONFIG_BACKUPS = 10;

/** Where the earlier versions of `file` go. */
export function backupDir(file: string): string {
  return join(dirname(file), 'backup');
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Writes `text` to `file` atomically and durably; a new file is created 0600 (it may hold CHAP secrets, as LIO's saveconfig.json). */
export async function writeFileDurably(file: string, text: string): Promise<void> {
  const exists = await stat(file).then(
    () => true,
    () => false,
  );
  await writeFileAtomic(file, text, { fsync: true, ...(exists ? {} : { mode: 0o600 }) });
  await fsyncDir(dirname(file));
}

/** "saveconfig.json" → "saveconfig-20260105-161500.123.json" (sorts by time). */
function backupName(file: string, now: Date, n: number): string {
  const base = basename(file).replace(/\.json$/, '');
  const t = now.toISOString().replace(/[-:]/g, '').replace('T', '-').replace('Z', '');
  return `${base}-${t}${n ? `-${n}` : ''}.json`;
}

/** The backups of `file`, oldest first. */
export async function listBackups(file: string): Promise<string[]> {
  const base = basename(file).replace(/\.json$/, '');
  const dir = backupDir(file);
  const names = await readdir(dir).catch(() => [] as string[]);
  return names
    .filter((n) => n.startsWith(`${base}-`) && /-\d{8}-\d{6}\.\d{3}(-\d+)?\.json$/.test(n))
    .sort()
    .map((n) => join(dir, n));
}

export interface SaveResult {
  file: string;
  /** Where the replaced version was kept; absent when the file was new or unchanged. */
  backup?: string;
  /** The text was the file's already: nothing was written. */
  unchanged?: boolean;
}

/**
 * Replaces `file` with `doc` (pretty JSON), keeping the replaced version in backup/ and at
 * most `backups` versions there.
 */
export async function saveConfigFile(file: string, doc: unknown, opts: { backups?: number; now?: Date } = {}): Promise<SaveResult> {
  const keep = opts.backups ?? CONFIG_BACKUPS;
  const text = JSON.stringify(doc, null, 2) + '\n';
  const old = await readIfExists(file);
  if (old === text) return { file, unchanged: true };
  let backup: string | undefined;
  if (old !== undefined && keep > 0) {
    const dir = backupDir(file);
    // mkdir names the directory it created (undefined when it existed): that entry must be durable too.
    const created = await mkdir(dir, { mode: 0o700, recursive: true });
    if (created) await fsyncDir(dirname(file));
    const now = opts.now ?? new Date();
    const taken = new Set(await listBackups(file));
    let n = 0;
    do backup = join(dir, backupName(file, now, n++));
    while (taken.has(backup));
    await writeFileDurably(backup, old);
    const all = await listBackups(file);
    for (const f of all.slice(0, Math.max(0, all.length - keep))) await unlink(f).catch(() => {});
  }
  await writeFileDurably(file, text);
  return backup ? { file, backup } : { file };
}
