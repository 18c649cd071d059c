import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Static, Type } from 'typebox';
import { Value } from 'typebox/value';
import { writeAtomic } from '../common/atomic-write.js';
import type { Logger } from '../common/logger.js';

const StoredInstance = Type.Object({
  id: Type.String({ pattern: '^[0-9a-f]{8}$' }),
  alias: Type.String(),
  type: Type.Union([Type.Literal('client'), Type.Literal('server')]),
  url: Type.String({ minLength: 1 }),
  config: Type.String(),
  restart: Type.Boolean(),
  meta: Type.Object({
    peer: Type.Object({ sid: Type.String(), type: Type.String(), alias: Type.String() }),
    tags: Type.Record(Type.String(), Type.String()),
  }),
  tcprx: Type.Integer(),
  tcptx: Type.Integer(),
  udprx: Type.Integer(),
  udptx: Type.Integer(),
});

const StateFile = Type.Object({
  version: Type.Literal(1),
  mid: Type.String({ pattern: '^[0-9a-f]{16}$' }),
  key: Type.String({ pattern: '^[0-9a-f]{32}$' }),
  alias: Type.String(),
  instances: Type.Array(StoredInstance),
});

export type StoredInstance = Static<typeof StoredInstance>;
export type MasterState = Static<typeof StateFile>;

// Kept as an export of the store for existing importers; the helper lives in common/ so the hub shares it.
export { writeAtomic };

export const STATE_FILE = 'porthole-master.json';
export const BACKUP_FILE = 'porthole-master.json.backup';

/** Parses and schema-checks a state file's text; throws with the reason. */
export function parseState(text: string): MasterState {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new Error(`not JSON (${(err as Error).message})`);
  }
  if (!Value.Check(StateFile, data)) {
    const first = Value.Errors(StateFile, data)[0];
    throw new Error(
      `does not match the state schema${first ? ` (${first.instancePath || '/'}: ${first.message})` : ''}`,
    );
  }
  const ids = new Set<string>();
  for (const i of data.instances) {
    if (ids.has(i.id)) throw new Error(`instance id ${i.id} appears twice`);
    ids.add(i.id);
  }
  return data;
}

export class StateLoadError extends Error {
  override readonly name = 'StateLoadError';
}

/**
 * The master's state file (JSON) in `dir`, with a backup beside it. Writes are atomic and coalesced: every change
 * asks for a write with `save()`, which resolves once a write that includes the change is on disk; changes made
 * while a write is in flight go into the next one.
 */
export class StateStore {
  readonly path: string;
  readonly backupPath: string;
  private writing: Promise<void> | undefined;
  private pending: Promise<void> | undefined;
  private lazyTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly dir: string,
    private readonly snapshot: () => MasterState,
    private readonly logger: Logger,
  ) {
    this.path = join(dir, STATE_FILE);
    this.backupPath = join(dir, BACKUP_FILE);
  }

  /**
   * Loads the state: the main file, else the backup (with a clear log line) when the main file is missing or
   * corrupt. Returns undefined only when neither file exists (a first start); a corrupt main file with no usable
   * backup is an error, never a silent empty state.
   */
  async load(): Promise<MasterState | undefined> {
    await mkdir(this.dir, { recursive: true });
    const main = await this.read(this.path);
    if (main.state) return main.state;
    const backup = await this.read(this.backupPath);
    if (main.missing && backup.missing) return undefined;
    if (backup.state) {
      this.logger.error(
        main.missing
          ? `State file ${this.path} is missing; loaded the backup ${this.backupPath}`
          : `State file ${this.path} is corrupt (${main.error}); loaded the backup ${this.backupPath}`,
      );
      return backup.state;
    }
    throw new StateLoadError(
      `State file ${this.path} is ${main.missing ? 'missing' : `corrupt (${main.error})`} and the backup ${this.backupPath} is ${backup.missing ? 'missing' : `corrupt (${backup.error})`}: refusing to start with an empty state (fix or remove the files)`,
    );
  }

  private async read(path: string): Promise<{ state?: MasterState; missing?: boolean; error?: string }> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { missing: true };
      return { error: (err as Error).message };
    }
    try {
      return { state: parseState(text) };
    } catch (err) {
      return { error: (err as Error).message };
    }
  }

  /** Writes the current state soon; resolves when a write that includes everything changed so far is on disk. */
  save(): Promise<void> {
    if (this.lazyTimer) {
      clearTimeout(this.lazyTimer);
      this.lazyTimer = undefined;
    }
    if (this.pending) return this.pending;
    const after = this.writing ?? Promise.resolve();
    const next = after.then(() => {
      this.pending = undefined;
      this.writing = next;
      return this.writeNow().finally(() => {
        if (this.writing === next) this.writing = undefined;
      });
    });
    this.pending = next;
    return next;
  }

  /** Writes within `delay` ms (for frequent, low-value changes such as counters from stats reports). */
  saveLazily(delay: number): void {
    if (this.lazyTimer || this.pending) return;
    this.lazyTimer = setTimeout(() => {
      this.lazyTimer = undefined;
      this.save().catch(() => {});
    }, delay);
    this.lazyTimer.unref();
  }

  private async writeNow(): Promise<void> {
    try {
      await writeAtomic(this.path, `${JSON.stringify(this.snapshot(), null, 2)}\n`);
    } catch (err) {
      this.logger.error(`Writing the state file ${this.path} failed: ${(err as Error).message}`);
      throw err;
    }
  }

  /** Writes the backup file from the current state. */
  async backup(): Promise<void> {
    await writeAtomic(this.backupPath, `${JSON.stringify(this.snapshot(), null, 2)}\n`);
  }

  /** Flushes any pending write (at shutdown). */
  async flush(): Promise<void> {
    if (this.lazyTimer) await this.save();
    else if (this.pending) await this.pending;
    else if (this.writing) await this.writing;
  }
}
