// Which secret and config data a node gets: exactly what the tasks assigned to it reference, opened
// (secrets) on the leader and sent over that node's mutual-TLS session just before the assignments that
// need it; and, once no assigned task references one any more, a removal. The dispatcher keeps, per
// session, the set it has sent, so each value crosses the wire once per session, and a new session (or
// a new hello, after which the agent forgets its copies) starts from nothing.
//
// Messages are cut at FILES_MESSAGE_BYTES so that even many 500 KiB secrets stay far below the
// session's message and buffer limits.
import type { ConfigReference, Frozen, SecretReference, Task } from '../../api/objects.ts';
import type { ReadTx } from '../store/store.ts';
import type { KeyRing } from '../keys/keyring.ts';
import type { FileData, ManagerToAgent } from '../../api/dispatcher.ts';

/** Largest sum of base64 data in one 'files' message. */
export const FILES_MESSAGE_BYTES = 1 << 20;

export type FilesMessage = Extract<ManagerToAgent, { t: 'files' }>;

const key = (kind: 'secret' | 'config', id: string) => `${kind}:${id}`;

/** Tasks in the desired states that may still need their files (a task being stopped does not). */
function needsFiles(t: Frozen<Task>): boolean {
  return t.desiredState === 'running' || t.desiredState === 'complete';
}

/**
 * The messages that bring a node from `sent` (updated in place) to the files `tasks` reference. A
 * secret that cannot be opened (no key on this manager yet) is left out and logged; the node rejects
 * the task that needs it, and the next assignment round tries again.
 */
export function planFileMessages(
  tx: ReadTx,
  tasks: readonly Frozen<Task>[],
  sent: Set<string>,
  ring: KeyRing | null,
  log: (l: string) => void,
): FilesMessage[] {
  const wanted = new Map<string, { kind: 'secret' | 'config'; id: string }>();
  for (const t of tasks) {
    if (!needsFiles(t)) continue;
    for (const r of (t.spec.secrets ?? []) as readonly SecretReference[]) wanted.set(key('secret', r.secretId), { kind: 'secret', id: r.secretId });
    for (const r of (t.spec.configs ?? []) as readonly ConfigReference[]) wanted.set(key('config', r.configId), { kind: 'config', id: r.configId });
  }
  const remove = [...sent].filter((k) => !wanted.has(k));
  for (const k of remove) sent.delete(k);
  const out: FilesMessage[] = [];
  let cur: FileData[] = [];
  let bytes = 0;
  for (const [k, w] of wanted) {
    if (sent.has(k)) continue;
    let data: string | null = null;
    if (w.kind === 'config') {
      data = tx.get('config', w.id)?.spec.data ?? null;
    } else {
      const s = tx.get('secret', w.id);
      if (s && ring) {
        try {
          data = ring.open(s.spec.data, { kind: 'secret', id: s.id }).toString('base64');
        } catch (e) {
          log(`dispatcher: secret ${w.id}: ${(e as Error).message}`);
        }
      } else if (s && !ring) log(`dispatcher: secret ${w.id} cannot be delivered: this manager has no data-encryption key`);
    }
    if (data === null) continue;
    if (bytes > 0 && bytes + data.length > FILES_MESSAGE_BYTES) {
      out.push({ t: 'files', set: cur, remove: [] });
      cur = [];
      bytes = 0;
    }
    cur.push({ kind: w.kind, id: w.id, data });
    bytes += data.length;
    sent.add(k);
  }
  if (cur.length > 0 || remove.length > 0) out.push({ t: 'files', set: cur, remove: remove.map(parseKey) });
  return out;
}

function parseKey(k: string): { kind: 'secret' | 'config'; id: string } {
  const i = k.indexOf(':');
  return { kind: k.slice(0, i) as 'secret' | 'config', id: k.slice(i + 1) };
}
