// nftables plumbing shared by the VIP load balancer (lb.ts) and the routing mesh / host ports (mesh.ts):
// a model of one table (sets, maps, chains), a renderer to an atomic `nft -f` script, a planner that turns
// two models into the minimal incremental script, a parser of `nft list table` output so that what the
// kernel holds can be compared with what Shoal wants, an applier that runs nft in any network namespace, and
// a programmer that keeps one table converged (incremental updates, re-assert after tampering, deferred
// compaction).
//
// Two costs shape this (measured on the development machines, kernel 6.18, nft 1.0.6):
//  - Committing a transaction that deletes anything (a rule, an element, a chain) leaves work for an RCU
//    grace period, and the kernel makes the next nfnetlink socket that closes, anywhere, wait for it
//    (≈ 10–15 ms; a whole `nft -f` run of additions takes ≈ 4 ms). So a changed chain gets its new version
//    *inserted at its head* rather than flushed: a chain marked `terminal` ends with a rule that decides every
//    packet entering it, so the new version shadows the old one completely; the dead tail is removed later in
//    one batched compaction, off the latency path.
//  - Each `nft` run is a process (≈ 3 ms with nsenter, from Node) that first reads the table into its cache.
//    Incremental scripts therefore go to a long-lived `nft -i` kept per namespace for a few seconds after its
//    last use (NftSession): ≈ 2 ms a transaction on a 1,000-service table instead of ≈ 9 ms.
import { spawn, type ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import { writeFile, readFile } from 'node:fs/promises';

export type NftFamily = 'ip' | 'bridge';

export interface NftSet {
  /** 'map' when elements carry a value (`key : value`), else 'set'. */
  kind: 'set' | 'map';
  /** Declaration lines exactly as `nft list` prints them, e.g. `type ipv4_addr : verdict`. */
  decl: string[];
  /** key → value (null for plain sets). Keys and values as nft prints them. */
  elements: Map<string, string | null>;
}

export interface NftChain {
  /** Base chains: the hook line as nft prints it, e.g. `type nat hook output priority -100; policy accept;`. */
  hook?: string;
  /** Rules, in order, as nft prints them. */
  rules: string[];
  /**
   * True when the last rule decides every packet that enters the chain (an unconditional dnat or reject):
   * a new version can then be inserted at the head and the old rules below it are never reached.
   */
  terminal?: boolean;
}

export interface NftTable {
  family: NftFamily;
  name: string;
  /** Sets and maps, rendered in insertion order (before the chains). */
  sets: Map<string, NftSet>;
  /** Chains, rendered in insertion order. */
  chains: Map<string, NftChain>;
}

export function emptyTable(name: string, family: NftFamily = 'ip'): NftTable {
  return { family, name, sets: new Map(), chains: new Map() };
}

// ---------------------------------------------------------------------------------------------- names

const SAFE_NAME = /^[A-Za-z0-9_]+$/;

/**
 * A string usable inside an nft identifier (letters, digits, underscore). Ids that already are (Shoal's ids
 * are base36) are kept as they are; anything else becomes a short stable hash, so distinct ids stay distinct.
 */
export function nftName(id: string): string {
  if (SAFE_NAME.test(id) && id.length <= 64) return id;
  return `h${fnv1a64(id)}`;
}

function fnv1a64(s: string): string {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(s, 'utf8')) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(36);
}

/** A dotted-quad IPv4 address (no prefix length). */
export function isIpv4(s: string): boolean {
  let parts = 0;
  let digits = 0;
  let value = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 46; // a final '.' closes the last part
    if (c === 46) {
      if (digits === 0 || value > 255) return false;
      parts++;
      digits = 0;
      value = 0;
    } else if (c >= 48 && c <= 57) {
      if (++digits > 3) return false;
      value = value * 10 + (c - 48);
    } else return false;
  }
  return parts === 4;
}

/** Orders keys the way a person reads them: runs of digits compare as numbers (IPs, ports). No allocation. */
export function naturalCompare(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(j);
    const da = ca >= 48 && ca <= 57;
    const db = cb >= 48 && cb <= 57;
    if (da && db) {
      // Compare the two digit runs as numbers: skip leading zeros, then longer is larger, then digit by digit.
      let ea = i;
      let eb = j;
      while (ea < a.length && isDigit(a.charCodeAt(ea))) ea++;
      while (eb < b.length && isDigit(b.charCodeAt(eb))) eb++;
      let sa = i;
      let sb = j;
      while (sa < ea - 1 && a.charCodeAt(sa) === 48) sa++;
      while (sb < eb - 1 && b.charCodeAt(sb) === 48) sb++;
      const la = ea - sa;
      const lb = eb - sb;
      if (la !== lb) return la - lb;
      for (let k = 0; k < la; k++) {
        const d = a.charCodeAt(sa + k) - b.charCodeAt(sb + k);
        if (d !== 0) return d;
      }
      i = ea;
      j = eb;
      continue;
    }
    if (ca !== cb) return ca - cb;
    i++;
    j++;
  }
  return a.length - i - (b.length - j);
}

const isDigit = (c: number) => c >= 48 && c <= 57;

// ------------------------------------------------------------------------------------------- rendering

function elementText(k: string, v: string | null): string {
  return v === null ? k : `${k} : ${v}`;
}

function sortedElements(s: NftSet): [string, string | null][] {
  return [...s.elements].sort((a, b) => naturalCompare(a[0], b[0]));
}

/** `elements = { … }` lines, a few elements a line (empty list: no line at all). */
function renderElements(s: NftSet, indent: string): string[] {
  const items = sortedElements(s).map(([k, v]) => elementText(k, v));
  if (items.length === 0) return [];
  const per = s.kind === 'map' ? 4 : 12;
  const lines: string[] = [];
  for (let i = 0; i < items.length; i += per) {
    const chunk = items.slice(i, i + per).join(', ');
    const first = i === 0;
    const last = i + per >= items.length;
    lines.push(`${indent}${first ? 'elements = { ' : '\t     '}${chunk}${last ? ' }' : ','}`);
  }
  return lines;
}

function setKeyword(s: NftSet): string {
  return s.kind === 'map' ? 'map' : 'set';
}

/** The table's body (`table … { … }`), as nft would print it (modulo element order and line breaks). */
export function renderTableBody(t: NftTable): string {
  const out: string[] = [`table ${t.family} ${t.name} {`];
  const blocks: string[][] = [];
  for (const [name, s] of t.sets) {
    blocks.push([`\t${setKeyword(s)} ${name} {`, ...s.decl.map((d) => `\t\t${d}`), ...renderElements(s, '\t\t'), '\t}']);
  }
  for (const [name, c] of t.chains) {
    blocks.push([`\tchain ${name} {`, ...(c.hook ? [`\t\t${c.hook}`] : []), ...c.rules.map((r) => `\t\t${r}`), '\t}']);
  }
  blocks.forEach((b, i) => {
    if (i > 0) out.push('');
    out.push(...b);
  });
  out.push('}');
  return out.join('\n') + '\n';
}

/**
 * A script that replaces the table atomically: creating it first makes the delete valid whether or not it
 * existed, and all three commands commit as one transaction (packets never see a missing table).
 */
export function renderTable(t: NftTable): string {
  return `table ${t.family} ${t.name}\ndelete table ${t.family} ${t.name}\n` + renderTableBody(t);
}

/** A script that removes the table if it exists. */
export function renderDeleteTable(family: NftFamily, name: string): string {
  return `table ${family} ${name}\ndelete table ${family} ${name}\n`;
}

// -------------------------------------------------------------------------------------------- planning

export interface PlanOptions {
  /**
   * 'prepend' (default): a changed terminal chain gets its new rules inserted at its head, the old ones stay
   * below, unreachable, until compaction. 'flush': flush the chain and add the new rules (deletes: slower).
   */
  mode?: 'prepend' | 'flush';
}

export interface Plan {
  script: string;
  /** Chains that were given a new version on top of an old one (they hold dead rules now). */
  prepended: string[];
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * The smallest script taking the kernel from `prev` to `next`, or null when only a full reload can (a set's
 * declaration or a base chain's hook changed, or the tables are different ones). '' when nothing changed.
 */
export function planTableChanges(prev: NftTable, next: NftTable, opts: PlanOptions = {}): Plan | null {
  if (prev.family !== next.family || prev.name !== next.name) return null;
  const mode = opts.mode ?? 'prepend';
  const T = `${next.family} ${next.name}`;
  const addChains: string[] = [];
  const chainRules: string[] = [];
  const addSets: string[] = [];
  const delElems: string[] = [];
  const addElems: string[] = [];
  const delSets: string[] = [];
  const delChains: string[] = [];
  const prepended: string[] = [];

  for (const [name, c] of next.chains) {
    const p = prev.chains.get(name);
    if (p === c) continue;
    if (!p) {
      addChains.push(c.hook ? `add chain ${T} ${name} { ${c.hook} }` : `add chain ${T} ${name}`);
      for (const r of c.rules) chainRules.push(`add rule ${T} ${name} ${r}`);
      continue;
    }
    if ((p.hook ?? '') !== (c.hook ?? '')) return null;
    if (sameList(p.rules, c.rules)) continue;
    if (mode === 'prepend' && c.terminal && !c.hook && c.rules.length > 0) {
      for (let i = c.rules.length - 1; i >= 0; i--) chainRules.push(`insert rule ${T} ${name} ${c.rules[i]}`);
      prepended.push(name);
    } else {
      chainRules.push(`flush chain ${T} ${name}`);
      for (const r of c.rules) chainRules.push(`add rule ${T} ${name} ${r}`);
    }
  }
  for (const name of prev.chains.keys()) {
    if (!next.chains.has(name)) delChains.push(`flush chain ${T} ${name}`, `delete chain ${T} ${name}`);
  }

  for (const [name, s] of next.sets) {
    const p = prev.sets.get(name);
    if (p === s) continue;
    if (!p) {
      addSets.push(`add ${setKeyword(s)} ${T} ${name} { ${s.decl.join('; ')}; }`);
      if (s.elements.size > 0)
        addElems.push(
          `add element ${T} ${name} { ${sortedElements(s)
            .map(([k, v]) => elementText(k, v))
            .join(', ')} }`,
        );
      continue;
    }
    if (p.kind !== s.kind || !sameList(p.decl, s.decl)) return null;
    const gone: string[] = [];
    const added: [string, string | null][] = [];
    for (const [k, v] of p.elements) {
      if (!s.elements.has(k) || s.elements.get(k) !== v) gone.push(k);
    }
    for (const [k, v] of s.elements) {
      if (!p.elements.has(k) || p.elements.get(k) !== v) added.push([k, v]);
    }
    gone.sort(naturalCompare);
    added.sort((x, y) => naturalCompare(x[0], y[0]));
    if (gone.length > 0) delElems.push(`delete element ${T} ${name} { ${gone.join(', ')} }`);
    if (added.length > 0) addElems.push(`add element ${T} ${name} { ${added.map(([k, v]) => elementText(k, v)).join(', ')} }`);
  }
  for (const [name, s] of prev.sets) {
    if (!next.sets.has(name)) delSets.push(`delete ${setKeyword(s)} ${T} ${name}`);
  }

  // Order matters inside the transaction: a chain must exist before a rule or a verdict element refers to
  // it; an element or a set that refers to a chain must be gone before the chain is deleted.
  const lines = [...addChains, ...addSets, ...chainRules, ...delElems, ...addElems, ...delSets, ...delChains];
  return { script: lines.length ? lines.join('\n') + '\n' : '', prepended };
}

/**
 * `next` with every chain and set that equals its counterpart in `prev` replaced by that counterpart, so a
 * table kept between updates is mostly the same objects from one update to the next (little garbage that
 * lives long enough to be promoted, and reference-equal parts are skipped quickly by the planner).
 */
export function shareUnchanged(prev: NftTable | null, next: NftTable): NftTable {
  if (!prev || prev.family !== next.family || prev.name !== next.name) return next;
  for (const [name, c] of next.chains) {
    const p = prev.chains.get(name);
    if (p && p !== c && (p.hook ?? '') === (c.hook ?? '') && !!p.terminal === !!c.terminal && sameList(p.rules, c.rules)) next.chains.set(name, p);
  }
  for (const [name, s] of next.sets) {
    const p = prev.sets.get(name);
    if (p && p !== s && p.kind === s.kind && sameList(p.decl, s.decl) && sameElements(p.elements, s.elements)) next.sets.set(name, p);
  }
  return next;
}

function sameElements(a: Map<string, string | null>, b: Map<string, string | null>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v || (v === null && !b.has(k))) return false;
  return true;
}

/** One transaction that removes the dead rules below the current version of the given chains. */
export function renderCompaction(t: NftTable, chains: Iterable<string>): string {
  const T = `${t.family} ${t.name}`;
  const lines: string[] = [];
  for (const name of chains) {
    const c = t.chains.get(name);
    if (!c) continue;
    lines.push(`flush chain ${T} ${name}`);
    for (const r of c.rules) lines.push(`add rule ${T} ${name} ${r}`);
  }
  return lines.length ? lines.join('\n') + '\n' : '';
}

// --------------------------------------------------------------------------------------------- parsing

export interface ParsedTable {
  family: string;
  name: string;
  sets: Map<string, NftSet>;
  chains: Map<string, { hook?: string; rules: string[] }>;
}

/** Splits at commas that are not inside braces. */
function splitTopLevel(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '{') depth++;
    else if (ch === '}') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

/** Sorts the elements of anonymous sets and maps in a rule, so that listing order does not matter. */
export function canonicalRule(rule: string): string {
  return rule.replace(/\{ ([^{}]*) \}/g, (_m, inner: string) => `{ ${splitTopLevel(inner).sort(naturalCompare).join(', ')} }`);
}

const braceBalance = (s: string) => (s.match(/\{/g)?.length ?? 0) - (s.match(/\}/g)?.length ?? 0);

/** Parses `nft list table FAMILY NAME` output (one table). Throws on text it does not understand. */
export function parseNftListing(text: string): ParsedTable {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  let i = 0;
  const head = /^table (\S+) (\S+) \{$/.exec(lines[i++] ?? '');
  if (!head) throw new Error(`nft listing: expected a table, got: ${lines[0] ?? '(nothing)'}`);
  const t: ParsedTable = { family: head[1]!, name: head[2]!, sets: new Map(), chains: new Map() };
  while (i < lines.length) {
    const line = lines[i++]!;
    if (line === '}') break;
    let m = /^(set|map) (\S+) \{$/.exec(line);
    if (m) {
      const s: NftSet = { kind: m[1] as 'set' | 'map', decl: [], elements: new Map() };
      while (i < lines.length && lines[i] !== '}') {
        let l = lines[i++]!;
        if (l.startsWith('elements = {')) {
          while (braceBalance(l) > 0 && i < lines.length) l += ' ' + lines[i++]!;
          const inner = l.slice(l.indexOf('{') + 1, l.lastIndexOf('}'));
          for (const item of splitTopLevel(inner)) {
            const sep = s.kind === 'map' ? item.indexOf(' : ') : -1;
            if (sep >= 0) s.elements.set(item.slice(0, sep).trim(), item.slice(sep + 3).trim());
            else s.elements.set(item, null);
          }
        } else s.decl.push(l);
      }
      i++;
      t.sets.set(m[2]!, s);
      continue;
    }
    m = /^chain (\S+) \{$/.exec(line);
    if (m) {
      const c: { hook?: string; rules: string[] } = { rules: [] };
      while (i < lines.length && lines[i] !== '}') {
        const l = lines[i++]!;
        if (/^type \S+ hook /.test(l)) c.hook = l;
        else c.rules.push(l);
      }
      i++;
      t.chains.set(m[1]!, c);
      continue;
    }
    throw new Error(`nft listing: unexpected line: ${line}`);
  }
  return t;
}

/**
 * The first difference between what the kernel holds and what is wanted, or null when they agree. Rules
 * below the current version of a terminal chain (left by prepending, unreachable) are not differences.
 */
export function diffTable(actual: ParsedTable, want: NftTable): string | null {
  for (const [name, s] of want.sets) {
    const a = actual.sets.get(name);
    if (!a) return `${s.kind} ${name} is missing`;
    if (a.kind !== s.kind || !sameList(a.decl, s.decl)) return `${s.kind} ${name} is declared differently`;
    if (a.elements.size !== s.elements.size) return `${s.kind} ${name} has ${a.elements.size} elements, want ${s.elements.size}`;
    for (const [k, v] of s.elements) {
      if (!a.elements.has(k)) return `${s.kind} ${name} lacks element ${k}`;
      if ((a.elements.get(k) ?? null) !== v) return `${s.kind} ${name}: element ${k} maps to ${a.elements.get(k)}, want ${v}`;
    }
  }
  for (const name of actual.sets.keys()) if (!want.sets.has(name)) return `unexpected set ${name}`;
  for (const [name, c] of want.chains) {
    const a = actual.chains.get(name);
    if (!a) return `chain ${name} is missing`;
    if ((a.hook ?? '') !== (c.hook ?? '')) return `chain ${name} is hooked differently: ${a.hook ?? '(none)'}`;
    const have = c.terminal && !c.hook ? a.rules.slice(0, c.rules.length) : a.rules;
    const want1 = c.rules.map(canonicalRule);
    const have1 = have.map(canonicalRule);
    if (!sameList(have1, want1)) {
      const at = want1.findIndex((r, j) => have1[j] !== r);
      return at >= 0
        ? `chain ${name}, rule ${at + 1}: have "${have1[at] ?? '(none)'}", want "${want1[at]}"`
        : `chain ${name} has ${have1.length} rules, want ${want1.length}`;
    }
  }
  for (const name of actual.chains.keys()) if (!want.chains.has(name)) return `unexpected chain ${name}`;
  return null;
}

/** Number of unreachable rules left below the current versions of terminal chains. */
export function deadRules(actual: ParsedTable, want: NftTable): number {
  let n = 0;
  for (const [name, c] of want.chains) {
    const a = actual.chains.get(name);
    if (a && c.terminal && !c.hook && a.rules.length > c.rules.length) n += a.rules.length - c.rules.length;
  }
  return n;
}

// -------------------------------------------------------------------------------------------- applying

export class NftError extends Error {
  /** 1-based line of the script that nft rejected first, when it said. */
  readonly line?: number;
  readonly scriptLine?: string;
  constructor(
    message: string,
    readonly stderr: string,
    readonly netns: string | null,
    line?: number,
    scriptLine?: string,
  ) {
    super(message);
    this.name = 'NftError';
    if (line !== undefined) this.line = line;
    if (scriptLine !== undefined) this.scriptLine = scriptLine;
  }
}

export interface NftApplierOptions {
  /** The nft binary (default: `nft` from PATH). */
  nft?: string;
  /** The nsenter binary, used to run nft in another network namespace (default: `nsenter`). */
  nsenter?: string;
  /** A run that takes longer is killed and fails (default 30 s). */
  timeoutMs?: number;
  /**
   * Incremental scripts (one command a line) go to a long-lived `nft -i` per namespace, kept this long after
   * its last use (default 3000 ms; 0: always spawn `nft -f -`). See NftSession.
   */
  keepAliveMs?: number;
  /** A session that does not answer within this (default 5 s) is given up, and sessions with it. */
  sessionTimeoutMs?: number;
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs nft in a network namespace (a path such as /run/netns/X or /proc/PID/ns/net; null: this one). */
export class NftApplier {
  private readonly nft: string;
  private readonly nsenter: string;
  private readonly timeoutMs: number;
  private keepAliveMs: number;
  private readonly sessionTimeoutMs: number;
  private readonly sessions = new Map<string, NftSession>();

  constructor(opts: NftApplierOptions = {}) {
    this.nft = opts.nft ?? 'nft';
    this.nsenter = opts.nsenter ?? 'nsenter';
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.keepAliveMs = opts.keepAliveMs ?? 3000;
    this.sessionTimeoutMs = Math.min(this.timeoutMs, opts.sessionTimeoutMs ?? 5000);
  }

  private argv(netns: string | null, args: string[]): [string, string[]] {
    return netns === null ? [this.nft, args] : [this.nsenter, [`--net=${netns}`, this.nft, ...args]];
  }

  private run(netns: string | null, args: string[], input?: string): Promise<RunResult> {
    const [cmd, argv] = this.argv(netns, args);
    return runProcess(cmd, argv, input, this.timeoutMs);
  }

  /**
   * Loads a script: all of it in one transaction, or nothing. Scripts of one-line commands (what the planner
   * writes) go through the namespace's session when sessions are on; anything else through `nft -f -`.
   */
  async apply(netns: string | null, script: string): Promise<void> {
    if (script.trim() === '') return;
    const lines = this.keepAliveMs > 0 ? singleLineCommands(script) : null;
    if (lines) {
      const key = netns ?? '';
      // A path may name a different namespace than when the session entered it (deleted and made again):
      // the session is only reused for the same namespace (nsfs inode).
      const id = netns === null ? 'self' : nsIdentity(netns);
      let s = this.sessions.get(key);
      if (s && s.nsId !== id) s.close();
      if (id !== null && (!s || s.closed)) {
        const [cmd, argv] = this.argv(netns, ['-i']);
        const created: NftSession = new NftSession(cmd, argv, netns, id, this.sessionTimeoutMs, this.keepAliveMs, (broken) => {
          if (this.sessions.get(key) === created) this.sessions.delete(key);
          // An nft whose interactive output this code does not understand: spawn `nft -f -` from now on.
          if (broken) this.keepAliveMs = 0;
        });
        this.sessions.set(key, created);
        s = created;
      }
      if (s && !s.closed) return s.run(lines);
    }
    const r = await this.run(netns, ['-f', '-'], script);
    if (r.code === 0) return;
    throw scriptError(r, script, netns);
  }

  /** Ends the session kept for a namespace (call it before the namespace goes away: the session holds it). */
  closeSession(netns: string | null): void {
    this.sessions.get(netns ?? '')?.close();
  }

  /** Ends every session. */
  close(): void {
    for (const s of [...this.sessions.values()]) s.close();
  }

  /** Namespaces with a live session. */
  get sessionNamespaces(): (string | null)[] {
    return [...this.sessions.keys()].map((k) => (k === '' ? null : k));
  }

  /** `nft list table`: the listing, or null when the table does not exist. */
  async listTable(netns: string | null, family: NftFamily, name: string): Promise<string | null> {
    const r = await this.run(netns, ['list', 'table', family, name]);
    if (r.code === 0) return r.stdout;
    if (/No such file or directory/.test(r.stderr)) return null;
    throw new NftError(`nft list table ${family} ${name}${where(netns)}: ${firstLine(r.stderr) || `exit ${r.code}`}`, r.stderr, netns);
  }

  /** Removes a table if it is there. */
  async deleteTable(netns: string | null, family: NftFamily, name: string): Promise<void> {
    await this.apply(netns, renderDeleteTable(family, name));
  }

  /** Reads a sysctl of the namespace (`net.ipv4.ip_forward`), through /proc/sys as seen from inside it. */
  async readSysctl(netns: string | null, key: string): Promise<string> {
    const path = sysctlPath(key);
    if (netns === null) return (await readFile(path, 'utf8')).trim();
    const r = await runProcess(this.nsenter, [`--net=${netns}`, 'cat', path], undefined, this.timeoutMs);
    if (r.code !== 0) throw new Error(`read ${key}${where(netns)}: ${firstLine(r.stderr) || `exit ${r.code}`}`);
    return r.stdout.trim();
  }

  /**
   * Writes a sysctl of the namespace. /proc/sys/net resolves to the network namespace of the process that
   * opens it, so for another namespace the write is done by a process entered into it.
   */
  async writeSysctl(netns: string | null, key: string, value: string): Promise<void> {
    const path = sysctlPath(key);
    if (netns === null) return writeFile(path, value);
    const r = await runProcess(this.nsenter, [`--net=${netns}`, 'sh', '-c', 'printf "%s\\n" "$1" > "$2"', 'sh', value, path], undefined, this.timeoutMs);
    if (r.code !== 0) throw new Error(`write ${key}=${value}${where(netns)}: ${firstLine(r.stderr) || `exit ${r.code}`}`);
  }
}

/** The identity (device:inode of its nsfs file) of the namespace a path names, or null if it names none. */
function nsIdentity(path: string): string | null {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

function sysctlPath(key: string): string {
  if (!/^[a-z0-9_.-]+$/i.test(key)) throw new Error(`bad sysctl name ${key}`);
  return '/proc/sys/' + key.replace(/\./g, '/');
}

const where = (netns: string | null) => (netns === null ? '' : ` in ${netns}`);
const firstLine = (s: string) =>
  s
    .split('\n')
    .find((l) => l.trim())
    ?.trim() ?? '';

function scriptError(r: RunResult, script: string, netns: string | null): NftError {
  // nft reports `/dev/stdin:LINE:COL-COL: Error: message`, then echoes the line with a caret underneath.
  const m = /^\/dev\/stdin:(\d+):[\d-]+: Error: (.*)$/m.exec(r.stderr);
  if (m) {
    const line = Number(m[1]);
    const text = script.split('\n')[line - 1] ?? '';
    return new NftError(`nft${where(netns)}: ${m[2]} (script line ${line}: ${text.trim()})`, r.stderr, netns, line, text);
  }
  return new NftError(`nft${where(netns)}: ${firstLine(r.stderr) || `exit ${r.code}`}`, r.stderr, netns);
}

/**
 * The script's lines when every one is a complete command of its own (`add …`, `insert …`, `delete …`,
 * `flush …`, braces balanced on the line), else null. Such a script can be given to `nft -i` as one line
 * (commands separated by `;`), which nft runs as one transaction.
 */
export function singleLineCommands(script: string): string[] | null {
  const lines = script.split('\n').filter((l) => l.trim() !== '');
  for (const l of lines) {
    if (!/^(add|insert|delete|flush|replace|create|destroy) /.test(l) || braceBalance(l) !== 0 || l.includes(';;') || /[\r\t]/.test(l)) return null;
  }
  return lines.length ? lines : null;
}

/**
 * A long-lived `nft -i` in one namespace. Why: every `nft` run costs a process spawn (≈ 3 ms with nsenter,
 * more from a large Node process) and, when it closes its netlink socket while deleted objects await their
 * RCU grace period, waits for that period (≈ 10–15 ms): a kept socket pays neither. A transaction is written
 * as one line; a sentinel line after it (`list table ip shoal-sync-N`, which fails with an error that echoes
 * the line) marks where the transaction's own error output ends. Any protocol trouble (the process dies, no
 * sentinel in time) fails the call and ends the session; the caller then reloads with `nft -f`.
 */
class NftSession {
  private readonly child: ChildProcess;
  private err = '';
  private seq = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private wake: (() => void) | undefined;
  private idle: NodeJS.Timeout | undefined;
  closed = false;
  private exitInfo = '';

  constructor(
    cmd: string,
    argv: string[],
    private readonly netns: string | null,
    readonly nsId: string,
    private readonly timeoutMs: number,
    private readonly keepAliveMs: number,
    private readonly onClose: (broken: boolean) => void,
  ) {
    this.child = spawn(cmd, argv, { stdio: ['pipe', 'ignore', 'pipe'] });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (d: string) => {
      this.err += d;
      this.wake?.();
    });
    this.child.stdin!.on('error', () => this.close());
    this.child.on('error', (e) => {
      this.exitInfo = e.message;
      this.close();
    });
    this.child.on('close', (code, signal) => {
      this.exitInfo ||= `${argv.includes('-i') ? 'nft -i' : cmd} exited (${signal ?? code})${this.err.trim() ? `: ${firstLine(this.err)}` : ''}`;
      this.close();
    });
    this.touch();
    this.hold(false);
  }

  /** An idle session never keeps the process alive; one with a transaction in flight does. */
  private hold(on: boolean): void {
    const handles = [this.child, this.child.stdin, this.child.stderr] as ({ ref(): void; unref(): void } | null)[];
    for (const h of handles) if (h) on ? h.ref() : h.unref();
  }

  private touch(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = setTimeout(() => this.close(), this.keepAliveMs);
    this.idle.unref();
  }

  close(broken = false): void {
    if (this.closed) return;
    this.closed = true;
    if (this.idle) clearTimeout(this.idle);
    this.child.stdin!.end();
    // nft exits on end of input; the kill is for a stuck one (it never keeps the namespace alive for long).
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    t.unref();
    this.child.once('exit', () => clearTimeout(t));
    this.onClose(broken);
    this.wake?.();
  }

  run(lines: string[]): Promise<void> {
    const p = this.queue.then(() => this.exec(lines));
    this.queue = p.catch(() => undefined);
    return p;
  }

  private async exec(lines: string[]): Promise<void> {
    this.hold(true);
    try {
      await this.transact(lines);
    } finally {
      this.hold(false);
    }
  }

  private async transact(lines: string[]): Promise<void> {
    if (this.closed) throw new NftError(`nft session${where(this.netns)} is closed${this.exitInfo ? `: ${this.exitInfo}` : ''}`, '', this.netns);
    const line = lines.join('; ');
    const marker = `list table ip shoal-sync-${++this.seq}`;
    this.child.stdin!.write(`${line}\n${marker}\n`);
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const i = this.err.indexOf(`\n${marker}\n`);
      const j = i >= 0 ? this.err.indexOf('\n', i + marker.length + 2) : -1;
      if (j >= 0) {
        // Everything before the sentinel's own error message (the line before its echo) is the transaction's.
        const mine = this.err.slice(0, i);
        this.err = this.err.slice(j + 1);
        const cut = mine.lastIndexOf('\n');
        const own = cut >= 0 ? mine.slice(0, cut) : '';
        this.touch();
        if (own.trim() === '') return;
        throw sessionError(own, lines, this.netns);
      }
      if (this.closed || Date.now() > deadline) {
        this.close(!this.closed);
        throw new NftError(`nft session${where(this.netns)}: ${this.exitInfo || `no answer in ${this.timeoutMs} ms`}`, this.err, this.netns);
      }
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, Math.max(1, Math.min(1000, deadline - Date.now()))).unref();
      });
    }
  }
}

/** Maps nft's caret under the one-line transaction back to the command (script line) it points into. */
function sessionError(stderr: string, lines: string[], netns: string | null): NftError {
  const rows = stderr.split('\n');
  const msg = rows.find((r) => r.startsWith('Error: '))?.slice(7) ?? firstLine(stderr);
  const caretRow = rows.find((r) => /^\s*[~^]+[~^\s]*$/.test(r) && /[~^]/.test(r));
  if (caretRow !== undefined) {
    const col = caretRow.search(/[\^]/) >= 0 ? caretRow.search(/[\^]/) : caretRow.search(/~/);
    let start = 0;
    for (let k = 0; k < lines.length; k++) {
      const end = start + lines[k]!.length;
      if (col < end + 2 || k === lines.length - 1) {
        return new NftError(`nft${where(netns)}: ${msg} (script line ${k + 1}: ${lines[k]!.trim()})`, stderr, netns, k + 1, lines[k]!);
      }
      start = end + 2;
    }
  }
  return new NftError(`nft${where(netns)}: ${msg}`, stderr, netns);
}

function runProcess(cmd: string, args: string[], input: string | undefined, timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString('utf8') + (signal ? `\nkilled by ${signal} after ${timeoutMs} ms` : '');
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr });
    });
    if (input !== undefined) {
      child.stdin!.on('error', () => {}); // nft may exit before reading everything; 'close' reports why
      child.stdin!.end(input);
    }
  });
}

// ------------------------------------------------------------------------------------------ programmer

export type ApplyKind = 'full' | 'incremental' | 'unchanged';

export interface VerifyResult {
  /** True when the kernel held what was wanted (nothing was reloaded). */
  ok: boolean;
  /** What differed, when something did. */
  reason?: string;
}

export interface TableProgrammerOptions {
  applier?: NftApplier;
  /** Network namespace path, or null for the namespace Shoal runs in. */
  netns: string | null;
  /** Dead rules left by prepending are compacted this long after the last change (default 1000 ms; 0: never by timer). */
  compactAfterMs?: number;
  /** Called when an incremental update failed and a full reload was done instead (the error is not thrown). */
  onFallback?: (err: Error) => void;
}

/**
 * Keeps one table of one namespace converged on a wanted model. Operations are serialised. The model of what
 * was last loaded is kept, so a change costs the incremental script only; verify() compares the kernel's
 * listing with the model and reloads the whole table when anything differs (or it is gone).
 */
export class TableProgrammer {
  readonly applier: NftApplier;
  readonly netns: string | null;
  private loaded: NftTable | null = null;
  private readonly dirty = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private readonly compactAfterMs: number;
  private readonly onFallback: ((err: Error) => void) | undefined;

  constructor(opts: TableProgrammerOptions) {
    this.applier = opts.applier ?? new NftApplier();
    this.netns = opts.netns;
    this.compactAfterMs = opts.compactAfterMs ?? 1000;
    this.onFallback = opts.onFallback;
  }

  /** The model last loaded into the kernel (null before the first load or after remove()). */
  get current(): NftTable | null {
    return this.loaded;
  }

  /** Chains currently holding dead rules below their current version. */
  get dirtyChains(): string[] {
    return [...this.dirty];
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Converges the kernel on `want`: incremental when a previous load is known, else a full load. */
  set(wanted: NftTable): Promise<ApplyKind> {
    return this.serial(async () => {
      const want = shareUnchanged(this.loaded, wanted);
      if (this.loaded) {
        const plan = planTableChanges(this.loaded, want);
        if (plan && plan.script === '') {
          this.loaded = want;
          return 'unchanged';
        }
        if (plan) {
          try {
            await this.applier.apply(this.netns, plan.script);
            this.loaded = want;
            for (const c of plan.prepended) this.dirty.add(c);
            for (const c of [...this.dirty]) if (!want.chains.has(c)) this.dirty.delete(c);
            this.scheduleCompaction();
            return 'incremental';
          } catch (e) {
            this.onFallback?.(e as Error);
          }
        }
      }
      await this.loadFull(want);
      return 'full';
    });
  }

  private async loadFull(want: NftTable): Promise<void> {
    this.loaded = null;
    await this.applier.apply(this.netns, renderTable(want));
    this.loaded = want;
    this.dirty.clear();
  }

  /**
   * Compares the kernel's table with the last loaded model; when it is missing or differs (someone ran
   * `nft flush ruleset`, deleted an element, …), reloads it whole. Resolves ok: false with the reason then.
   */
  verify(): Promise<VerifyResult> {
    return this.serial(async () => {
      const want = this.loaded;
      if (!want) return { ok: true };
      const text = await this.applier.listTable(this.netns, want.family, want.name);
      let reason: string | null;
      if (text === null) reason = `table ${want.family} ${want.name} is missing`;
      else {
        try {
          reason = diffTable(parseNftListing(text), want);
        } catch (e) {
          reason = (e as Error).message;
        }
      }
      if (reason === null) return { ok: true };
      await this.loadFull(want);
      return { ok: false, reason };
    });
  }

  /** Removes the dead rules left by prepending now (one transaction). Returns the number of chains rewritten. */
  compact(): Promise<number> {
    return this.serial(async () => {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      const want = this.loaded;
      if (!want || this.dirty.size === 0) return 0;
      const chains = [...this.dirty].filter((c) => want.chains.has(c));
      try {
        await this.applier.apply(this.netns, renderCompaction(want, chains));
      } catch (e) {
        this.onFallback?.(e as Error);
        await this.loadFull(want);
      }
      this.dirty.clear();
      return chains.length;
    });
  }

  private scheduleCompaction(): void {
    if (this.compactAfterMs <= 0 || this.dirty.size === 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.compact().catch((e: Error) => this.onFallback?.(e));
    }, this.compactAfterMs);
    this.timer.unref();
  }

  /** Deletes the table and forgets it. */
  remove(family: NftFamily, name: string): Promise<void> {
    return this.serial(async () => {
      await this.applier.deleteTable(this.netns, family, name);
      this.loaded = null;
      this.dirty.clear();
      this.dispose();
    });
  }

  /** Stops the compaction timer and ends the namespace's nft session (the table stays as it is). */
  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.applier.closeSession(this.netns);
  }
}
