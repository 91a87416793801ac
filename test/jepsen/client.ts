// A register client over Shoal's real control API, for the linearizability harness. A register is a
// service; its value is one service label (absent = null):
//   read  = GET /v1/services/:name (linearizable: followers serve it through ReadIndex)
//   write = POST /v1/services/:name/update with the spec carrying the new label
//   cas   = the same with `version` (a stale version must be refused with 409)
// Writes sent to a follower get 421 naming the leader; the client follows it, as the CLI does. Only
// answers that say what happened are definite; a timeout, a 503, a refused or reset connection or any
// other surprise is an unknown outcome (the op may take effect later, or never), as the checker models it.
import { httpsRaw, type ManagerTls } from '../../transport/https.ts';
import type { ServiceSpec } from '../../api/objects.ts';

export const REGISTER_LABEL = 'jepsen.value';
const MAX_REDIRECTS = 2;

export type ReadResult = { kind: 'ok'; value: string | null; version: number } | { kind: 'unknown'; why: string };
export type WriteResult = { kind: 'ok' } | { kind: 'refused'; why: string } | { kind: 'unknown'; why: string };

interface Answer {
  status: number;
  body: any;
}

export class RegisterClient {
  constructor(
    private readonly tls: ManagerTls,
    /** Spec every write sends (labels replaced), one per register: only the label ever changes. */
    private readonly templates: ReadonlyMap<string, ServiceSpec>,
    private readonly timeoutMs: number,
  ) {}

  async read(key: string, manager: string): Promise<ReadResult> {
    const a = await this.call(manager, 'GET', `/v1/services/${encodeURIComponent(key)}`, undefined);
    if ('why' in a) return { kind: 'unknown', why: a.why };
    if (a.status !== 200) return { kind: 'unknown', why: describe(a) };
    const v = a.body?.spec?.labels?.[REGISTER_LABEL];
    if (typeof a.body?.version !== 'number' || (v !== undefined && typeof v !== 'string')) {
      return { kind: 'unknown', why: `malformed service from ${manager}` };
    }
    return { kind: 'ok', value: v ?? null, version: a.body.version };
  }

  /** `version` given: a compare-and-set against that version; a 409 "changed since you read it" refuses it. */
  async write(key: string, value: string, manager: string, version?: number): Promise<WriteResult> {
    const base = this.templates.get(key);
    if (!base) throw new Error(`no register ${key}`);
    const spec = { ...base, labels: { ...base.labels, [REGISTER_LABEL]: value } };
    const body = version === undefined ? { spec } : { spec, version };
    const a = await this.call(manager, 'POST', `/v1/services/${encodeURIComponent(key)}/update`, body);
    if ('why' in a) return { kind: 'unknown', why: a.why };
    if (a.status === 200) return { kind: 'ok' };
    if (version !== undefined && a.status === 409 && /changed since you read it/.test(String(a.body?.error?.message))) {
      return { kind: 'refused', why: describe(a) };
    }
    return { kind: 'unknown', why: describe(a) };
  }

  /** One request, following up to MAX_REDIRECTS 421s to the named leader. */
  private async call(manager: string, method: string, path: string, body: unknown): Promise<Answer | { why: string }> {
    let target = manager;
    for (let hop = 0; ; hop++) {
      let a: Answer;
      try {
        const r = await httpsRaw(target, method, path, body, this.tls, this.timeoutMs);
        let parsed: unknown = null;
        try {
          parsed = r.text ? JSON.parse(r.text) : null;
        } catch {
          parsed = { error: { message: r.text.slice(0, 200) } };
        }
        a = { status: r.status, body: parsed };
      } catch (e) {
        return { why: `${target}: ${(e as Error).message}` };
      }
      const leader = a.body?.error?.leader;
      if (a.status !== 421 || typeof leader !== 'string' || leader === '' || hop >= MAX_REDIRECTS) return a;
      target = leader; // 421 is answered before anything is proposed: following it cannot apply twice
    }
  }
}

function describe(a: Answer): string {
  return `${a.status} ${a.body?.error?.code ?? ''} ${a.body?.error?.message ?? ''}`.trim();
}
