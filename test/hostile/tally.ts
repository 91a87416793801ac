// Counts of what the hostile clients sent and how the managers answered, by input kind, plus a bounded
// list of findings (answers a hostile input must never get: a 5xx other than 503, an upgrade left
// hanging). Serialisable, so the attacker process can hand it to the test that judges the run.

export interface Finding {
  kind: string;
  /** What was sent (shortened). */
  input: string;
  /** What happened. */
  outcome: string;
}

export interface TallyData {
  sent: Record<string, number>;
  outcomes: Record<string, number>;
  findings: Finding[];
  /** Findings beyond the kept samples. */
  findingsDropped: number;
}

const MAX_FINDINGS = 200;

export class Tally {
  readonly sent = new Map<string, number>();
  readonly outcomes = new Map<string, number>();
  readonly findings: Finding[] = [];
  findingsDropped = 0;
  /** One kept sample per (kind, outcome): the report shows variety rather than one finding 200 times. */
  private readonly seen = new Set<string>();

  count(kind: string, n = 1): void {
    this.sent.set(kind, (this.sent.get(kind) ?? 0) + n);
  }

  outcome(kind: string, outcome: string): void {
    const k = `${kind} -> ${outcome}`;
    this.outcomes.set(k, (this.outcomes.get(k) ?? 0) + 1);
  }

  finding(kind: string, input: string, outcome: string): void {
    const key = `${kind}|${outcome}`;
    if (this.findings.length >= MAX_FINDINGS || this.seen.has(key)) {
      this.findingsDropped++;
      return;
    }
    this.seen.add(key);
    this.findings.push({ kind, input: input.length > 300 ? `${input.slice(0, 300)}… (${input.length} chars)` : input, outcome });
  }

  total(): number {
    let n = 0;
    for (const v of this.sent.values()) n += v;
    return n;
  }

  toJSON(): TallyData {
    return { sent: Object.fromEntries(this.sent), outcomes: Object.fromEntries(this.outcomes), findings: this.findings, findingsDropped: this.findingsDropped };
  }
}

/** Inputs sent, summed by the part of the kind before the first '/' (dispatcher types, admin, unauth…). */
export function sentByGroup(sent: Record<string, number>, depth = 1): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(sent)) {
    const g = k.split('/').slice(0, depth).join('/');
    out[g] = (out[g] ?? 0) + v;
  }
  return out;
}
