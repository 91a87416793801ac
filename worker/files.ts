// The secret and config data a node holds: in memory only, exactly what the leader sent for the tasks
// assigned here (manager/dispatcher/secret-delivery.ts). Never written to the state directory, logs or
// any file: the engine copies a task's files into a tmpfs when the task starts (engine/secrets.ts).
// A new session starts from nothing (the leader resends what is needed after its welcome).
//
// The manager is trusted in content, but the message is still checked for shape and size, so a bug
// on either side cannot grow this map without bound.
import type { FileData } from '../api/dispatcher.ts';

/** Docker's data limit (500 KiB) in base64, with slack. */
const MAX_DATA_CHARS = 700 * 1024;
/** Entries held at once; far more than any node's tasks reference. */
export const MAX_FILES = 10_000;
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export class FilesError extends Error {
  readonly code = 'EFILES';
  constructor(message: string) {
    super(message);
    this.name = 'FilesError';
  }
}

const key = (kind: string, id: string) => `${kind}:${id}`;

export class NodeFiles {
  private readonly data = new Map<string, Buffer>();

  /** Applies a 'files' message; throws FilesError (and changes nothing) when it is malformed. */
  apply(m: { set?: unknown; remove?: unknown }): void {
    const set = Array.isArray(m.set) ? (m.set as unknown[]) : null;
    const remove = Array.isArray(m.remove) ? (m.remove as unknown[]) : null;
    if (!set || !remove) throw new FilesError('files: set and remove must be arrays');
    const adds: [string, Buffer][] = set.map((raw, i) => {
      const f = raw as Partial<FileData>;
      if ((f?.kind !== 'secret' && f?.kind !== 'config') || typeof f.id !== 'string' || !ID_RE.test(f.id))
        throw new FilesError(`files: set[${i}] needs kind secret|config and an id`);
      if (typeof f.data !== 'string' || f.data.length > MAX_DATA_CHARS) throw new FilesError(`files: set[${i}].data must be base64 of at most 500 KiB`);
      return [key(f.kind, f.id), Buffer.from(f.data, 'base64')];
    });
    const dels = remove.map((raw, i) => {
      const r = raw as { kind?: unknown; id?: unknown };
      if (typeof r?.kind !== 'string' || typeof r.id !== 'string') throw new FilesError(`files: remove[${i}] needs kind and id`);
      return key(r.kind, r.id);
    });
    for (const k of dels) this.drop(k);
    for (const [k, b] of adds) {
      if (!this.data.has(k) && this.data.size >= MAX_FILES) throw new FilesError(`files: more than ${MAX_FILES} secrets and configs`);
      this.drop(k);
      this.data.set(k, b);
    }
  }

  get(kind: 'secret' | 'config', id: string): Buffer | undefined {
    return this.data.get(key(kind, id));
  }

  /** Forgets everything (a new session with the leader begins). */
  reset(): void {
    for (const k of [...this.data.keys()]) this.drop(k);
  }

  get size(): number {
    return this.data.size;
  }

  private drop(k: string): void {
    this.data.get(k)?.fill(0); // best effort: no copy left in this buffer for a heap dump
    this.data.delete(k);
  }
}
