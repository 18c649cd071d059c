import { randomBytes } from 'node:crypto';
import { close, fsync, open, rename, writeFile } from 'node:fs';
import { dirname } from 'node:path';
import { promisify } from 'node:util';

const openP = promisify(open);
const fsyncP = promisify(fsync);
const closeP = promisify(close);
const writeFileP = promisify(writeFile);
const renameP = promisify(rename);

/**
 * Writes `data` to `path` atomically: a temp file in the same directory (mode 0600: state files hold keys and
 * secrets), fsync, rename, fsync of the directory. A reader sees the old file or the new one, never a torn one.
 */
export async function writeAtomic(path: string, data: string): Promise<void> {
  const dir = dirname(path);
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = await openP(tmp, 'w', 0o600);
  try {
    await writeFileP(fd, data);
    await fsyncP(fd);
  } finally {
    await closeP(fd);
  }
  await renameP(tmp, path);
  try {
    const dfd = await openP(dir, 'r');
    await fsyncP(dfd).finally(() => closeP(dfd));
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic.
  }
}
