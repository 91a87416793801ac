// Bookkeeping for the real-cluster linearizability harness: the history of register operations (invoke
// and completion times from the caller's monotonic clock), the outcome counts, the versions the registers
// were read at (a CAS names a version, the checker names a value), and the verdict per key from Shoal's
// own checker (sim/linearizability.ts). Pure: times are passed in.
import { checkKv, formatHistory, type HistoryOp, type KvInput, type KvOutput } from '../../sim/linearizability.ts';

export type Outcome = 'ok' | 'fail' | 'unknown';

export class History {
  private readonly ops: HistoryOp[] = [];
  private readonly open = new Map<number, HistoryOp>();
  private nextId = 0;
  readonly counts = {
    read: { ok: 0, fail: 0, unknown: 0 },
    write: { ok: 0, fail: 0, unknown: 0 },
    cas: { ok: 0, fail: 0, unknown: 0 },
  };

  /** Records an invocation; returns the op id to complete it with. */
  invoke(client: number, input: KvInput, t: number): number {
    const op: HistoryOp = { id: this.nextId++, client, input, invoke: t, complete: null, output: null };
    this.ops.push(op);
    this.open.set(op.id, op);
    return op.id;
  }

  /** The operation completed with this output (a failed CAS is a completed op whose output says ok: false). */
  complete(id: number, output: KvOutput, t: number): void {
    const op = this.take(id);
    op.complete = t;
    op.output = output;
    this.counts[op.input.kind][output.kind === 'cas' && !output.ok ? 'fail' : 'ok']++;
  }

  /** The outcome is unknown (timeout, 503, lost connection): it may take effect at any later time, or never. */
  unknown(id: number): void {
    this.counts[this.take(id).input.kind].unknown++;
  }

  get size(): number {
    return this.ops.length;
  }

  /** A copy of the history for the checker (ops still open count as unknown). */
  snapshot(): HistoryOp[] {
    return this.ops.map((op) => ({ ...op }));
  }

  private take(id: number): HistoryOp {
    const op = this.open.get(id);
    if (!op) throw new Error(`history: op #${id} is not open`);
    this.open.delete(id);
    return op;
  }
}

/**
 * Which version of a register holds which value, learned from reads. Every written value is unique and
 * nothing but the harness writes the registers, so value ↔ version is one-to-one; a CAS "from value v" is
 * sent as an update with v's version. A value seen at two versions (or a version with two values) means
 * something else wrote the object, and the history would not mean what the checker assumes: it is
 * reported as a harness error, never silently checked.
 */
export class VersionBook {
  private readonly byValue = new Map<string, number>(); // key \0 value → version
  private readonly byVersion = new Map<string, string | null>(); // key \0 version → value
  readonly conflicts: string[] = [];

  note(key: string, value: string | null, version: number): void {
    const vk = `${key}\0${value === null ? '\u0001absent' : value}`;
    const known = this.byValue.get(vk);
    if (known !== undefined && known !== version && this.conflicts.length < 20) {
      this.conflicts.push(`${key}: value ${JSON.stringify(value)} read at versions ${known} and ${version}`);
    }
    if (known === undefined) this.byValue.set(vk, version);
    const nk = `${key}\0${version}`;
    if (this.byVersion.has(nk) && this.byVersion.get(nk) !== value && this.conflicts.length < 20) {
      this.conflicts.push(`${key}: version ${version} read with values ${JSON.stringify(this.byVersion.get(nk))} and ${JSON.stringify(value)}`);
    }
    this.byVersion.set(nk, value);
  }
}

export interface KeyVerdict {
  key: string;
  ops: number;
  verdict: 'linearizable' | 'anomaly' | 'undecided';
  message?: string;
  /** The key's history, formatted (anomalies only). */
  timeline?: string;
}

/** Checks every key on its own (P-compositionality), so one run reports how many keys went wrong. */
export function checkPerKey(history: HistoryOp[], maxSteps?: number): KeyVerdict[] {
  const byKey = new Map<string, HistoryOp[]>();
  for (const op of history) {
    const list = byKey.get(op.input.key);
    if (list) list.push(op);
    else byKey.set(op.input.key, [op]);
  }
  const out: KeyVerdict[] = [];
  for (const key of [...byKey.keys()].sort()) {
    const ops = byKey.get(key)!;
    const r = checkKv(ops, maxSteps !== undefined ? { maxSteps } : undefined);
    if (r.ok === true) out.push({ key, ops: ops.length, verdict: 'linearizable' });
    else if (r.ok === false) out.push({ key, ops: ops.length, verdict: 'anomaly', message: r.message, timeline: formatHistory(r.ops) });
    else out.push({ key, ops: ops.length, verdict: 'undecided', message: r.message });
  }
  return out;
}
