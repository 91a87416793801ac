// The replicated key-value state machine used by the simulation: read, write and compare-and-set.
// Commands travel through the Raft log as JSON; the state machine is volatile and is rebuilt from the
// latest snapshot plus the log after a restart, exactly like Shoal's store.
export type KvCommand = { op: 'write'; key: string; value: string; id: number } | { op: 'cas'; key: string; from: string | null; to: string; id: number };

export type KvResult = { op: 'write' } | { op: 'cas'; ok: boolean };

const enc = new TextEncoder();
const dec = new TextDecoder();

export function encodeCommand(c: KvCommand): Uint8Array {
  return enc.encode(JSON.stringify(c));
}

export function decodeCommand(data: Uint8Array): KvCommand {
  return JSON.parse(dec.decode(data)) as KvCommand;
}

export class KvStateMachine {
  private data = new Map<string, string>();

  apply(c: KvCommand): KvResult {
    if (c.op === 'write') {
      this.data.set(c.key, c.value);
      return { op: 'write' };
    }
    const cur = this.data.get(c.key) ?? null;
    if (cur !== c.from) return { op: 'cas', ok: false };
    this.data.set(c.key, c.to);
    return { op: 'cas', ok: true };
  }

  read(key: string): string | null {
    return this.data.get(key) ?? null;
  }

  snapshot(): Uint8Array {
    return enc.encode(JSON.stringify([...this.data.entries()].sort()));
  }

  restore(data: Uint8Array): void {
    this.data = new Map(JSON.parse(dec.decode(data)) as [string, string][]);
  }

  /** A digest for comparing replicas. */
  digest(): string {
    return JSON.stringify([...this.data.entries()].sort());
  }
}
