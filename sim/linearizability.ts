/**
 * Linearizability checker for a key-value register model (read / write / cas).
 *
 * Used by the deterministic simulation to check that the client-visible history
 * produced against the Raft-replicated store is linearizable.
 *
 * Algorithm
 * ---------
 * - P-compositionality: a history over independent keys is linearizable iff the
 *   sub-history of every key is, so each key is checked on its own.
 * - Per key, Wing & Gong's depth-first search with Lowe's improvements: the
 *   history becomes a time-ordered doubly linked list of call/return entries.
 *   The search repeatedly picks a call entry that occurs before the first return
 *   entry still in the list (i.e. an op that may be linearized next), applies it
 *   to the sequential model, and "lifts" its call and return out of the list.
 *   Reaching a return entry means that op had to be linearized already, so the
 *   search backtracks ("unlifts" the most recent choice, O(1) because lifts are
 *   undone in LIFO order). A cache of visited configurations (set of linearized
 *   ops, model state) prunes the search. Its hash is maintained incrementally
 *   (Zobrist: XOR of a random word per op) and hits are verified exactly.
 * - The linearized set is a bitset. Completed ops are numbered in invocation
 *   order, so their bits look like 1111…1 [window] 0000…0: only the window
 *   (first non-full word to last non-zero word) is stored and compared, which
 *   keeps cache operations O(concurrency) instead of O(ops) on large keys.
 * - Real-time order: A precedes B iff A.complete < B.invoke (strict). At equal
 *   timestamps call entries are ordered before return entries, so touching
 *   intervals count as concurrent (the conservative choice).
 *
 * Unknown outcomes (complete === null)
 * ------------------------------------
 * - An unknown read has no effect and no observable output: it is dropped.
 * - An unknown write/cas may take effect at any point after its invocation, or
 *   never. Its return is at +infinity (so it never blocks anything and has no
 *   return entry) and its output is unconstrained. The search succeeds as soon
 *   as every *completed* op is linearized: leftover unknown ops go to the end,
 *   where nothing observes them (equivalent to "never took effect").
 *
 * Without further care every pending unknown op could be linearized uselessly at
 * many points, each choice a distinct cache entry, and the search would be
 * exponential in the number of pending unknown ops. The search is therefore
 * restricted to a canonical form. Every valid linearization can be rewritten
 * into canonical form by moving unknown ops later. That is always allowed in
 * real time, because their completion is +infinity. An op moves either to the
 * tail (after the last completed op) or past the op that follows it. Each
 * rewrite moves an unknown op later, so rewriting terminates. Call a maximal
 * sequence of consecutive unknown ops a "run", and let s be the state before it.
 *   R1. Every unknown op changes the state (a write of a different value; a cas
 *       whose `from` matches and whose `to` differs). A no-op can be moved to
 *       the tail without changing any state.
 *   R2. A write (completed or unknown) never directly follows an unknown op. It
 *       overwrites the unknown op's effect, so that op can go to the tail.
 *   R3. The completed op Y that ends a run would NOT be valid in state s. If
 *       it were: a read or successful cas valid both in s and in the run's
 *       final state forces the two to be equal, so the run is a net no-op and
 *       can go to the tail as a whole; a failed cas leaves the state alone, so
 *       Y can move before the run. (Y is not a write, by R2.)
 * R3 makes the future depend on s, so "prev" (s while inside a run, -1 after a
 * completed op) is part of the cache key. R3 also means a run is only worth
 * starting if it can end in a value that some current completed candidate needs
 * and does not see in s. That value is a read's value or a successful cas's
 * `from`; it is any value but s if a failed cas has `from` = s. Through an
 * unknown cas, a demanded `to` makes its `from` demanded too.
 *
 * Two more reductions, both exact:
 * - Values nobody compares the register against (they are not a completed
 *   read's result or any cas's `from`) are indistinguishable, so they share one
 *   id. Unique never-read values, typical of unknown writes, then coincide.
 * - Unknown ops with the same effect (writes of the same value id, or cas ops
 *   with the same from/to) are interchangeable. Only the earliest-invoked
 *   pending one of each class is tried.
 * Pending unknown ops are kept in per-class lists, so unknown writes nobody
 * needs, and cas ops whose `from` does not match the state, cost nothing.
 * Completed candidates are tried before unknown ones, since most unknown ops
 * never took effect. That is exploration order only and does not change the
 * verdict.
 *
 * A step budget (default 5,000,000 per key; one step is one search-loop
 * iteration or one unit of demand bookkeeping) bounds the search. Exceeding it
 * yields { ok: 'unknown' } rather than a verdict. Refuting a non-linearizable
 * history needs far more steps than accepting a valid one, because every
 * alternative before the violation has to be explored. A single hot key with
 * thousands of ops and many unknown outcomes can exhaust the default budget.
 */

export type KvInput =
  | { kind: 'read'; key: string }
  | { kind: 'write'; key: string; value: string }
  | { kind: 'cas'; key: string; from: string | null; to: string }; // from null = "key absent"

export type KvOutput =
  | { kind: 'read'; value: string | null } // null = absent
  | { kind: 'write' }
  | { kind: 'cas'; ok: boolean };

export interface HistoryOp {
  id: number; // unique per history
  client: number; // which client issued it (a client has at most one op outstanding)
  input: KvInput;
  invoke: number; // virtual time of invocation
  /** Completion time; null when the outcome is unknown (client timed out / node crashed). */
  complete: number | null;
  /** Null exactly when complete is null. */
  output: KvOutput | null;
}

export type CheckResult =
  | { ok: true; keys: number; ops: number }
  | { ok: false; key: string; message: string; ops: HistoryOp[] } // ops = the sub-history of the failing key (for printing)
  | { ok: 'unknown'; key: string; message: string }; // search budget exhausted

export const DEFAULT_MAX_STEPS = 5_000_000;

// Compiled op kinds. Kinds >= K_WRITE_UNKNOWN have an unknown outcome.
const K_READ = 0; // completed read: valid iff state === a
const K_WRITE = 1; // completed write: state := a
const K_CAS_OK = 2; // completed cas that succeeded: valid iff state === a; state := b
const K_CAS_FAIL = 3; // completed cas that failed: valid iff state !== a
const K_WRITE_UNKNOWN = 4; // unknown write: state := a
const K_CAS_UNKNOWN = 5; // unknown cas: state := b if state === a

// Value ids: see checkKey.
const ABSENT = 0; // null
const OTHER = 1; // any value no op compares the register against
const FIRST_COMPARED = 2;

export function checkKv(history: HistoryOp[], opts?: { maxSteps?: number }): CheckResult {
  const maxSteps = opts?.maxSteps ?? DEFAULT_MAX_STEPS;
  validateHistory(history);

  const byKey = new Map<string, HistoryOp[]>();
  for (const op of history) {
    const list = byKey.get(op.input.key);
    if (list === undefined) byKey.set(op.input.key, [op]);
    else list.push(op);
  }

  // Deterministic key order; a definite violation on any key beats an 'unknown'.
  let firstUnknown: CheckResult | null = null;
  for (const key of [...byKey.keys()].sort()) {
    const ops = byKey.get(key)!;
    const res = checkKey(key, ops, maxSteps);
    if (res === null) continue;
    if (res.ok === false) return res;
    if (firstUnknown === null) firstUnknown = res;
  }
  return firstUnknown ?? { ok: true, keys: byKey.size, ops: history.length };
}

function validateHistory(history: HistoryOp[]): void {
  const ids = new Set<number>();
  for (const op of history) {
    const where = `linearizability: op #${op.id}`;
    if (ids.has(op.id)) throw new Error(`${where}: duplicate id`);
    ids.add(op.id);
    if (!Number.isFinite(op.invoke)) throw new Error(`${where}: invoke must be a finite number`);
    if ((op.complete === null) !== (op.output === null)) {
      throw new Error(`${where}: complete and output must be null together`);
    }
    if (op.complete !== null) {
      if (!Number.isFinite(op.complete)) throw new Error(`${where}: complete must be a finite number or null`);
      if (op.complete < op.invoke) throw new Error(`${where}: completes (${op.complete}) before it is invoked (${op.invoke})`);
    }
    if (op.output !== null && op.output.kind !== op.input.kind) {
      throw new Error(`${where}: output kind '${op.output.kind}' does not match input kind '${op.input.kind}'`);
    }
  }
}

/** Returns null when the key's sub-history is linearizable. */
function checkKey(key: string, allOps: HistoryOp[], maxSteps: number): CheckResult | null {
  // Unknown reads have neither effect nor observable output: drop them.
  // Completed ops come first, then unknown ones; each group in invocation order.
  const byInvoke = (a: HistoryOp, b: HistoryOp): number => a.invoke - b.invoke || a.id - b.id;
  const completedOps = allOps.filter((op) => op.complete !== null).sort(byInvoke);
  const unknownOps = allOps.filter((op) => op.complete === null && op.input.kind !== 'read').sort(byInvoke);
  const nC = completedOps.length;
  const nU = unknownOps.length;
  const n = nC + nU;
  if (nC === 0) return null; // nothing observable
  const ops = [...completedOps, ...unknownOps]; // local op index j; j >= nC <=> unknown

  // ---- values --------------------------------------------------------------------------
  // Completed ops observe the register only by comparing it with a value they
  // name: a read's result or a cas's `from`. Such values keep their own ids.
  // Every other value shares the id OTHER. An unknown cas whose `to` is kept
  // distinguishes its `from`, so that `from` is kept too (to a fixpoint). An
  // unknown cas between two OTHER values maps OTHER to OTHER. The quotient
  // model is a bisimulation of the real one: every op sequence gives the same
  // outputs, so the verdict is the same. Meanwhile more configurations
  // coincide, and equal-valued unknown writes become interchangeable (below).
  const compared = new Map<string, number>();
  const noteCompared = (v: string | null): boolean => {
    if (v === null || compared.has(v)) return false;
    compared.set(v, compared.size + FIRST_COMPARED);
    return true;
  };
  for (const { input, output } of completedOps) {
    if (input.kind === 'cas') noteCompared(input.from);
    else if (output !== null && output.kind === 'read') noteCompared(output.value);
  }
  for (let changed = true; changed; ) {
    changed = false;
    for (const { input } of unknownOps) {
      if (input.kind === 'cas' && compared.has(input.to) && noteCompared(input.from)) changed = true;
    }
  }
  const idOf = (v: string | null): number => (v === null ? ABSENT : (compared.get(v) ?? OTHER));
  const nValues = compared.size + FIRST_COMPARED;

  // ---- compile ops ---------------------------------------------------------------
  const opKind = new Uint8Array(n);
  const opA = new Int32Array(n);
  const opB = new Int32Array(n);
  for (let j = 0; j < n; j++) {
    const { input, output } = ops[j]!;
    if (input.kind === 'read') {
      opKind[j] = K_READ;
      opA[j] = idOf(output !== null && output.kind === 'read' ? output.value : null);
    } else if (input.kind === 'write') {
      opKind[j] = output === null ? K_WRITE_UNKNOWN : K_WRITE;
      opA[j] = idOf(input.value);
    } else {
      opKind[j] = output === null ? K_CAS_UNKNOWN : output.kind === 'cas' && output.ok ? K_CAS_OK : K_CAS_FAIL;
      opA[j] = idOf(input.from);
      opB[j] = idOf(input.to);
    }
  }

  // ---- entries -----------------------------------------------------------------------
  // Entry 0 is the head sentinel; entries 1..E are all calls and the returns of
  // completed ops, numbered in time order (so entry numbers compare like times).
  // The main linked list holds the entries of completed ops only. An unknown op
  // is a candidate iff its call entry precedes the first return entry in it.
  const E = n + nC;
  const order: number[] = []; // (j << 1) | isReturn
  for (let j = 0; j < n; j++) {
    order.push(j << 1);
    if (j < nC) order.push((j << 1) | 1);
  }
  const timeOf = (code: number): number => {
    const op = ops[code >> 1]!;
    return (code & 1) === 0 ? op.invoke : op.complete!;
  };
  order.sort((x, y) => timeOf(x) - timeOf(y) || (x & 1) - (y & 1) || (x >> 1) - (y >> 1));

  const nextEnt = new Int32Array(E + 1).fill(-1);
  const prevEnt = new Int32Array(E + 1).fill(-1);
  const entOp = new Int32Array(E + 1);
  const entIsCall = new Uint8Array(E + 1);
  const callEnt = new Int32Array(n);
  const retEnt = new Int32Array(nC);
  let tail = 0;
  for (let i = 1; i <= E; i++) {
    const code = order[i - 1]!;
    const j = code >> 1;
    entOp[i] = j;
    if ((code & 1) === 0) {
      entIsCall[i] = 1;
      callEnt[j] = i;
    } else {
      retEnt[j] = i;
    }
    if (j < nC) {
      nextEnt[tail] = i;
      prevEnt[i] = tail;
      tail = i;
    }
  }
  const unlinkEntry = (e: number): void => {
    const p = prevEnt[e]!;
    const q = nextEnt[e]!;
    nextEnt[p] = q;
    if (q !== -1) prevEnt[q] = p;
  };
  const relinkEntry = (e: number): void => {
    const p = prevEnt[e]!;
    const q = nextEnt[e]!;
    nextEnt[p] = e;
    if (q !== -1) prevEnt[q] = e;
  };

  // ---- pending unknown ops ---------------------------------------------------------
  // Unknown writes of the same value, or unknown cas ops with the same (from, to),
  // are interchangeable: swapping two of them in a linearization changes no state,
  // and the earlier-invoked one may take the later one's place. So only the
  // earliest-invoked pending op of each class is ever tried. Each class is a
  // doubly linked list in invocation order with its own sentinel node:
  // n + v for writes of value v, n + nValues + p for cas pair p.
  const pairOf = new Map<number, number>(); // from * nValues + to -> pair id
  const pairFrom: number[] = [];
  const pairTo: number[] = [];
  const writeValueSeen = new Uint8Array(nValues);
  const writeValues: number[] = []; // values written by some unknown write
  const classOf = new Int32Array(n); // sentinel of the class of an unknown op
  for (let j = nC; j < n; j++) {
    if (opKind[j] === K_WRITE_UNKNOWN) {
      const v = opA[j]!;
      classOf[j] = n + v;
      if (writeValueSeen[v] === 0) {
        writeValueSeen[v] = 1;
        writeValues.push(v);
      }
    } else {
      const code = opA[j]! * nValues + opB[j]!;
      let p = pairOf.get(code);
      if (p === undefined) {
        p = pairFrom.length;
        pairOf.set(code, p);
        pairFrom.push(opA[j]!);
        pairTo.push(opB[j]!);
      }
      classOf[j] = n + nValues + p;
    }
  }
  const nodes = n + nValues + pairFrom.length;
  const uNext = new Int32Array(nodes);
  const uPrev = new Int32Array(nodes);
  for (let x = n; x < nodes; x++) uNext[x] = uPrev[x] = x;
  for (let j = nC; j < n; j++) {
    const sentinel = classOf[j]!;
    const last = uPrev[sentinel]!;
    uNext[last] = j;
    uPrev[j] = last;
    uNext[j] = sentinel;
    uPrev[sentinel] = j;
  }
  // Cas pairs grouped by `from` (CSR): pairsFrom[pairStart[v] .. pairStart[v + 1]).
  const pairStart = new Int32Array(nValues + 1);
  for (const f of pairFrom) pairStart[f + 1]!++;
  for (let v = 0; v < nValues; v++) pairStart[v + 1]! += pairStart[v]!;
  const pairsFrom = new Int32Array(pairFrom.length);
  {
    const fill = pairStart.slice(0, nValues);
    for (let p = 0; p < pairFrom.length; p++) pairsFrom[fill[pairFrom[p]!]!++] = p;
  }
  // Unknown cas ops as edges to -> from (CSR): predOf[predStart[t] .. predStart[t + 1]).
  const predStart = new Int32Array(nValues + 1);
  for (const t of pairTo) predStart[t + 1]!++;
  for (let v = 0; v < nValues; v++) predStart[v + 1]! += predStart[v]!;
  const predOf = new Int32Array(pairTo.length);
  {
    const fill = predStart.slice(0, nValues);
    for (let p = 0; p < pairTo.length; p++) predOf[fill[pairTo[p]!]!++] = pairFrom[p]!;
  }

  // Demand (see R3): the values a run of unknown ops starting in state s may
  // usefully end in. demandList[0 .. demandCount) are the demanded values and
  // mark[v] === markGen marks them; demandAny means "any value other than s".
  const mark = new Int32Array(nValues);
  const demandList = new Int32Array(nValues);
  let demandCount = 0;
  let markGen = 0;
  let demandAny = false;
  const demand = (v: number): void => {
    if (mark[v] !== markGen) {
      mark[v] = markGen;
      demandList[demandCount++] = v;
    }
  };
  /** Recomputes the demand for the current candidates; returns the work done. */
  const computeDemand = (s: number, firstRet: number): number => {
    markGen++;
    demandCount = 0;
    demandAny = false;
    let work = 1;
    for (let e = nextEnt[0]!; e !== firstRet; e = nextEnt[e]!) {
      work++;
      const j = entOp[e]!;
      const a = opA[j]!;
      switch (opKind[j]) {
        case K_READ:
        case K_CAS_OK:
          if (a !== s) demand(a); // needs the register to hold a
          break;
        case K_CAS_FAIL:
          if (a === s) demandAny = true; // needs the register to hold anything but s
          break;
      }
    }
    if (demandAny) return work;
    // A run may pass through unknown cas ops: if a cas's `to` is demanded, so is
    // its `from`. (Closed over all unknown cas ops, pending or not: a superset.)
    for (let i = 0; i < demandCount; i++) {
      const t = demandList[i]!;
      for (let k = predStart[t]!; k < predStart[t + 1]!; k++) {
        work++;
        demand(predOf[k]!);
      }
    }
    return work;
  };

  // ---- linearized set: windowed bitset over completed ops, plain over unknown ---
  const WC = (nC + 31) >>> 5;
  const lastMask = (nC & 31) === 0 ? 0xffffffff : ((1 << (nC & 31)) - 1) >>> 0;
  const bitsC = new Uint32Array(WC);
  const bitsU = new Uint32Array((nU + 31) >>> 5);
  let lo = 0; // bitsC words below lo are all ones
  let hi = 0; // bitsC words from hi on are all zeros
  const fullWord = (w: number): number => (w === WC - 1 ? lastMask : 0xffffffff);

  const zobrist = new Int32Array(n);
  let seed = 0x2545f491;
  for (let j = 0; j < n; j++) {
    seed ^= seed << 13; // xorshift32
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    zobrist[j] = seed;
  }
  const cache = new VisitedCache(bitsU.length);

  // ---- search --------------------------------------------------------------------------
  const stackOp = new Int32Array(n);
  const stackState = new Int32Array(n);
  const stackPrev = new Int32Array(n);
  const stackFirstRet = new Int32Array(n);
  const stackCursor = new Int32Array(n); // pass 2 cursor (phase, idx) when an unknown op was chosen
  let sp = 0;

  let state = ABSENT;
  let prev = -1; // state before the current run of unknown ops; -1 if the last op was completed
  let zob = 0;
  let completedRemaining = nC;
  let unknownRemaining = nU;

  // Pass 1 walks the main list over completed candidates. Pass 2 walks unknown
  // candidates: phase 0 over write classes (the demanded values, or every
  // written value if demandAny), then phase 1 over the cas pairs whose `from`
  // is the current state.
  let pass = 1;
  let entry = nextEnt[0]!; // pass 1 cursor
  let phase = 0; // pass 2 cursor ...
  let idx = 0; // ... and index within the phase
  let firstRet = -1; // pass 2: entry number of the first return in the main list
  let steps = 0;

  // Diagnostics for failure reports: the deepest point reached.
  let bestDone = -1;
  let bestBlocked = -1;
  let bestValue: string | null = null; // concrete register value there
  let bestLast = -1;

  for (;;) {
    if (completedRemaining === 0) return null;
    if (++steps > maxSteps) {
      return {
        ok: 'unknown',
        key,
        message:
          `linearizability search for key ${JSON.stringify(key)} exceeded its budget of ${maxSteps} steps ` +
          `(${nC} completed ops, ${nU} with unknown outcome); no verdict`,
      };
    }

    let j = -1; // candidate to try, if any
    if (pass === 1) {
      // While completed ops remain, their return entries are in the main list and
      // the scan never passes the first of them, so entry is never -1 here.
      if (entIsCall[entry] === 1) {
        j = entOp[entry]!;
      } else {
        firstRet = entry;
        if (unknownRemaining > 0) {
          pass = 2;
          steps += computeDemand(prev === -1 ? state : prev, firstRet);
          phase = prev === -1 ? 0 : 1; // R2: no unknown write inside a run
          idx = phase === 0 ? 0 : pairStart[state]!;
          continue;
        }
      }
    } else if (phase === 0) {
      const count = demandAny ? writeValues.length : demandCount;
      if (idx >= count) {
        phase = 1;
        idx = pairStart[state]!;
        continue;
      }
      const v = demandAny ? writeValues[idx]! : demandList[idx]!;
      const head = uNext[n + v]!;
      if (v !== state && head < n && callEnt[head]! < firstRet) {
        j = head;
      } else {
        idx++;
        continue;
      }
    } else if (idx < pairStart[state + 1]!) {
      const p = pairsFrom[idx]!;
      const to = pairTo[p]!;
      const head = uNext[n + nValues + p]!;
      if (to !== state && (demandAny || mark[to] === markGen) && head < n && callEnt[head]! < firstRet) {
        j = head;
      } else {
        idx++;
        continue;
      }
    }

    if (j === -1) {
      // No candidate left: backtrack.
      const done = nC - completedRemaining;
      if (done > bestDone) {
        bestDone = done;
        bestBlocked = entOp[firstRet]!;
        bestLast = sp > 0 ? stackOp[sp - 1]! : -1;
        bestValue = null; // the value set by the latest linearized mutation
        for (let d = sp - 1; d >= 0; d--) {
          const input = ops[stackOp[d]!]!.input;
          const kind = opKind[stackOp[d]!];
          if (input.kind === 'write') bestValue = input.value;
          else if (input.kind === 'cas' && (kind === K_CAS_OK || kind === K_CAS_UNKNOWN)) bestValue = input.to;
          else continue;
          break;
        }
      }
      if (sp === 0) break;
      sp--;
      const k = stackOp[sp]!;
      state = stackState[sp]!;
      prev = stackPrev[sp]!;
      zob ^= zobrist[k]!;
      if (k < nC) {
        const w = k >>> 5;
        bitsC[w] = bitsC[w]! & ~(1 << (k & 31));
        if (w < lo) lo = w;
        while (hi > 0 && bitsC[hi - 1] === 0) hi--;
        relinkEntry(retEnt[k]!); // reverse order of lift
        relinkEntry(callEnt[k]!);
        completedRemaining++;
        pass = 1;
        entry = nextEnt[callEnt[k]!]!;
      } else {
        const x = k - nC;
        bitsU[x >>> 5] = bitsU[x >>> 5]! & ~(1 << (x & 31));
        uNext[uPrev[k]!] = k;
        uPrev[uNext[k]!] = k;
        unknownRemaining++;
        pass = 2;
        firstRet = stackFirstRet[sp]!;
        steps += computeDemand(prev === -1 ? state : prev, firstRet); // same configuration, same demand
        const cursor = stackCursor[sp]!;
        phase = cursor & 1;
        idx = (cursor >>> 1) + 1;
      }
      continue;
    }

    // Try to linearize op j next.
    const a = opA[j]!;
    let ns = -1;
    switch (opKind[j]) {
      case K_READ: // R3: must not also be valid before the run
        if (state === a && (prev === -1 || prev !== a)) ns = state;
        break;
      case K_WRITE: // R2
        if (prev === -1) ns = a;
        break;
      case K_CAS_OK: // R3
        if (state === a && (prev === -1 || prev !== a)) ns = opB[j]!;
        break;
      case K_CAS_FAIL: // R3
        if (state !== a && (prev === -1 || prev === a)) ns = state;
        break;
      case K_WRITE_UNKNOWN: // R2, R1
        if (prev === -1 && state !== a) ns = a;
        break;
      case K_CAS_UNKNOWN: // R1
        if (state === a && opB[j] !== a) ns = opB[j]!;
        break;
    }
    if (ns !== -1) {
      const np = j < nC ? -1 : prev === -1 ? state : prev;
      const nz = zob ^ zobrist[j]!;
      const oldLo = lo;
      const oldHi = hi;
      if (j < nC) {
        const w = j >>> 5;
        bitsC[w] = bitsC[w]! | (1 << (j & 31));
        if (w >= hi) hi = w + 1;
        while (lo < WC && bitsC[lo] === fullWord(lo)) lo++;
      } else {
        const x = j - nC;
        bitsU[x >>> 5] = bitsU[x >>> 5]! | (1 << (x & 31));
      }
      if (cache.addIfAbsent(nz, ns, np, bitsC, lo, hi, bitsU)) {
        stackOp[sp] = j;
        stackState[sp] = state;
        stackPrev[sp] = prev;
        stackFirstRet[sp] = firstRet;
        stackCursor[sp] = (idx << 1) | phase;
        sp++;
        state = ns;
        prev = np;
        zob = nz;
        if (j < nC) {
          unlinkEntry(callEnt[j]!);
          unlinkEntry(retEnt[j]!);
          completedRemaining--;
        } else {
          uNext[uPrev[j]!] = uNext[j]!;
          uPrev[uNext[j]!] = uPrev[j]!;
          unknownRemaining--;
        }
        pass = 1;
        entry = nextEnt[0]!;
        continue;
      }
      // Already explored: undo the bit.
      if (j < nC) {
        const w = j >>> 5;
        bitsC[w] = bitsC[w]! & ~(1 << (j & 31));
        lo = oldLo;
        hi = oldHi;
      } else {
        const x = j - nC;
        bitsU[x >>> 5] = bitsU[x >>> 5]! & ~(1 << (x & 31));
      }
    }
    if (pass === 1) entry = nextEnt[entry]!;
    else idx++;
  }

  // ---- not linearizable -------------------------------------------------------------
  const blocked = ops[bestBlocked]!;
  const last = bestLast >= 0 ? ops[bestLast]! : null;
  const message =
    `history for key ${JSON.stringify(key)} is not linearizable: ` +
    `at best ${bestDone} of ${nC} completed ops could be linearized; ` +
    `then op #${blocked.id} (${describeOp(blocked)}) could not take effect before its completion ` +
    `with the register holding ${fmtValue(bestValue)}` +
    (last !== null ? ` (last linearized: op #${last.id}, ${describeOp(last)})` : ' (nothing linearized)');
  return { ok: false, key, message, ops: [...allOps].sort((a, b) => a.invoke - b.invoke || a.id - b.id) };
}

/**
 * Memo of visited (linearized set, model state, prev) configurations: a chained
 * hash table whose entries live in flat typed-array pools. An entry stores the
 * window [lo, hi) of the completed-op bitset plus the whole unknown-op bitset.
 */
class VisitedCache {
  private readonly wordsU: number;
  private readonly heads = new Map<number, number>();
  private words: Uint32Array = new Uint32Array(1024);
  private used = 0; // words in use
  private state: Int32Array = new Int32Array(256);
  private prev: Int32Array = new Int32Array(256);
  private lo: Int32Array = new Int32Array(256);
  private len: Int32Array = new Int32Array(256);
  private off: Int32Array = new Int32Array(256);
  private next: Int32Array = new Int32Array(256);
  private count = 0;

  constructor(wordsU: number) {
    this.wordsU = wordsU;
  }

  /** Adds the configuration; returns false if it was already present. */
  addIfAbsent(zob: number, state: number, prev: number, bitsC: Uint32Array, lo: number, hi: number, bitsU: Uint32Array): boolean {
    // Mix the model state into the set hash; keep it within V8's small-int range.
    let h = zob ^ Math.imul(state, 0x9e3779b1) ^ Math.imul(prev + 1, 0x7feb352d);
    h ^= h >>> 15;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h &= 0x3fffffff;

    const wordsU = this.wordsU;
    const len = hi > lo ? hi - lo : 0;
    const head = this.heads.get(h) ?? -1;
    for (let i = head; i !== -1; i = this.next[i]!) {
      if (this.state[i] !== state || this.prev[i] !== prev || this.lo[i] !== lo || this.len[i] !== len) continue;
      const words = this.words;
      let o = this.off[i]!;
      let same = true;
      for (let w = lo; w < lo + len; w++, o++) {
        if (words[o] !== bitsC[w]) {
          same = false;
          break;
        }
      }
      for (let w = 0; same && w < wordsU; w++, o++) {
        if (words[o] !== bitsU[w]) same = false;
      }
      if (same) return false;
    }

    const i = this.count++;
    if (i === this.state.length) this.growEntries();
    const need = len + wordsU;
    if (this.used + need > this.words.length) {
      const grown = new Uint32Array(Math.max(this.words.length * 2, this.used + need));
      grown.set(this.words.subarray(0, this.used));
      this.words = grown;
    }
    const o = this.used;
    this.words.set(bitsC.subarray(lo, lo + len), o);
    if (wordsU > 0) this.words.set(bitsU, o + len);
    this.used += need;
    this.state[i] = state;
    this.prev[i] = prev;
    this.lo[i] = lo;
    this.len[i] = len;
    this.off[i] = o;
    this.next[i] = head;
    this.heads.set(h, i);
    return true;
  }

  private growEntries(): void {
    const grow = (a: Int32Array): Int32Array => {
      const b = new Int32Array(a.length * 2);
      b.set(a);
      return b;
    };
    this.state = grow(this.state);
    this.prev = grow(this.prev);
    this.lo = grow(this.lo);
    this.len = grow(this.len);
    this.off = grow(this.off);
    this.next = grow(this.next);
  }
}

// ---- formatting ----------------------------------------------------------------

function fmtValue(v: string | null): string {
  return v === null ? 'absent' : JSON.stringify(v);
}

function describeInput(input: KvInput): string {
  const k = JSON.stringify(input.key);
  switch (input.kind) {
    case 'read':
      return `read(${k})`;
    case 'write':
      return `write(${k}, ${fmtValue(input.value)})`;
    case 'cas':
      return `cas(${k}, ${fmtValue(input.from)} -> ${fmtValue(input.to)})`;
  }
}

function describeOutput(output: KvOutput | null): string {
  if (output === null) return '? (outcome unknown)';
  switch (output.kind) {
    case 'read':
      return fmtValue(output.value);
    case 'write':
      return 'ok';
    case 'cas':
      return output.ok ? 'ok' : 'failed';
  }
}

function describeOp(op: HistoryOp): string {
  const end = op.complete === null ? '?' : String(op.complete);
  return `client ${op.client}: ${describeInput(op.input)} => ${describeOutput(op.output)}, during [${op.invoke}, ${end}]`;
}

/**
 * Human-readable timeline, one op per line, ordered by invocation time, with
 * [invoke .. complete] (complete '?' when the outcome is unknown):
 *
 *   [ 5 .. 30]  c12  #3  read("x")                => absent
 *   [10 .. 25]  c3   #1  write("x", "a")          => ok
 *   [12 ..  ?]  c1   #2  cas("x", "a" -> "b")     => ? (outcome unknown)
 *   [40 .. 41]  c2   #4  cas("x", absent -> "c")  => failed
 */
export function formatHistory(ops: HistoryOp[]): string {
  if (ops.length === 0) return '(empty history)';
  const sorted = [...ops].sort((a, b) => a.invoke - b.invoke || a.id - b.id);
  const rows = sorted.map((op) => ({
    invoke: String(op.invoke),
    complete: op.complete === null ? '?' : String(op.complete),
    client: `c${op.client}`,
    id: `#${op.id}`,
    call: describeInput(op.input),
    result: describeOutput(op.output),
  }));
  const width = (f: (r: (typeof rows)[number]) => string): number => rows.reduce((m, r) => Math.max(m, f(r).length), 0);
  const wt = Math.max(
    width((r) => r.invoke),
    width((r) => r.complete),
  );
  const wc = width((r) => r.client);
  const wi = width((r) => r.id);
  const wcall = width((r) => r.call);
  return rows
    .map(
      (r) =>
        `[${r.invoke.padStart(wt)} .. ${r.complete.padStart(wt)}]  ${r.client.padEnd(wc)}  ${r.id.padEnd(wi)}  ` + `${r.call.padEnd(wcall)}  => ${r.result}`,
    )
    .join('\n');
}
