// `shoal service create|update` flags, docker-compatible: turns an argv into a service spec draft (not
// yet validated: the manager runs validateServiceSpec on whatever it receives, so range rules such as
// "replicas must be ≥ 0" are reported there, with the field's path). This file only refuses what it cannot
// parse (bad sizes, durations, CPU counts, ports, mount syntax, unknown flags …), naming the flag.
//
//   create: [OPTIONS] IMAGE [COMMAND [ARG...]]   flags stop at IMAGE: everything after it is the command
//                                                (as in Docker, it becomes the task's args; --entrypoint
//                                                sets the task's command)
//   update: [OPTIONS] [SERVICE]                  flags and the service may be interleaved
//
// Flags take `--flag value` or `--flag=value`; short forms `-e X`, `-eX`, `-e=X`; booleans `--detach`,
// `--detach=false`; `--` ends the flags. List flags repeat. For scalars the last occurrence wins.
import { readFileSync } from 'node:fs';
import type {
  Frozen,
  HealthCheck,
  NetworkAttachmentConfig,
  Placement,
  PortConfig,
  ResourceAmounts,
  RestartPolicy,
  ServiceSpec,
  UpdateConfig,
} from '../api/objects.ts';
import type { MountSpec, ResourceLimits } from '../manager/service/spec.ts';
import { ConstraintError, parseConstraint } from '../manager/scheduler/constraints.ts';
import { all, bool as b, flagError, has, last, list as l, parseBool, scan, value as v, type FlagDef, type Parsed } from './flags.ts';

export { flagError, isFlagError, type FlagError } from './flags.ts';
import { parseFileRef, refName, type ConfigRefDraft, type SecretRefDraft } from './secret.ts';
import type { ConfigReference, SecretReference } from '../api/objects.ts';

// ---------------------------------------------------------------------------------------------- types

export interface TaskDraft {
  image?: string;
  command?: string[];
  args?: string[];
  env?: string[];
  workdir?: string;
  user?: string;
  hostname?: string;
  labels?: Record<string, string>;
  mounts?: MountSpec[];
  resources?: { limits?: ResourceLimits; reservations?: ResourceAmounts };
  restartPolicy?: Partial<RestartPolicy>;
  placement?: Placement;
  healthcheck?: Partial<HealthCheck>;
  stopSignal?: string;
  stopGracePeriodMs?: number;
  forceUpdate?: number;
  secrets?: (SecretRefDraft | SecretReference)[];
  configs?: (ConfigRefDraft | ConfigReference)[];
  capabilityAdd?: string[];
  capabilityDrop?: string[];
  readOnly?: boolean;
  sysctls?: Record<string, string>;
  ulimits?: { name: string; soft: number; hard: number }[];
  init?: boolean;
  seccomp?: { mode: 'default' | 'unconfined' | 'custom'; profile?: string };
}

export type ModeDraft =
  | { replicated: { replicas?: number } }
  | { global: Record<string, never> }
  | { replicatedJob: { maxConcurrent?: number; totalCompletions?: number } }
  | { globalJob: Record<string, never> };

/** A ServiceSpec-shaped object before validation: parts the flags did not mention are left out (create). */
export interface ServiceSpecDraft {
  name?: string;
  labels?: Record<string, string>;
  mode?: ModeDraft;
  task: TaskDraft;
  update?: Partial<UpdateConfig>;
  rollback?: Partial<UpdateConfig>;
  networks?: NetworkAttachmentConfig[];
  endpoint?: { mode?: 'vip' | 'dnsrr'; ports?: PortConfig[] };
  autoscale?: AutoscaleDraft;
}

/** `--autoscale` before validation (the manager fills the defaults and checks the ranges). */
export interface AutoscaleDraft {
  min?: number;
  max?: number;
  cpu?: number;
  memory?: number;
  windowMs?: number;
  cooldowns?: { outMs?: number; inMs?: number };
}

/** Where `-e KEY` (no value) and `--env-file` look; defaults to process.env and the real file system. */
export interface FlagIo {
  env?: Readonly<Record<string, string | undefined>>;
  readFile?: (path: string) => string;
}

export interface ServiceCreateArgs {
  spec: ServiceSpecDraft;
  detach: boolean;
  quiet: boolean;
}

export interface ServiceUpdateArgs {
  /** The SERVICE positional when argv contained one (callers may also strip it before calling). */
  service?: string;
  /** The whole new spec: `current` with the flags applied. */
  spec: ServiceSpecDraft;
  force: boolean;
  detach: boolean;
  quiet: boolean;
  rollback: boolean;
}

// ------------------------------------------------------------------------------------- value parsers

const q = (s: string) => JSON.stringify(s);

const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Go-style durations → milliseconds (rounded): `500ms`, `10s`, `1m30s`, `1.5h`, `2h45m`, `0`. Units ns,
 * us (µs), ms, s, m, h; a number needs a unit except 0. Negative durations are refused.
 */
export function parseDurationGo(s: string, flag = 'duration'): number {
  const bad = () => flagError(flag, `invalid duration ${q(s)} (use e.g. 500ms, 10s, 1m30s, 1h)`);
  let rest = s.trim();
  if (rest.startsWith('-')) {
    if (/^-0*(\.0*)?$/.test(rest)) return 0;
    throw flagError(flag, `duration cannot be negative (got ${q(s)})`);
  }
  if (rest.startsWith('+')) rest = rest.slice(1);
  if (rest === '0') return 0;
  if (rest === '') throw bad();
  let total = 0;
  const re = /^(\d*\.?\d*)(ns|us|µs|μs|ms|s|m|h)/;
  while (rest !== '') {
    const m = re.exec(rest);
    if (!m || m[1] === '' || m[1] === '.') throw bad();
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  const ms = Math.round(total);
  if (!Number.isSafeInteger(ms)) throw bad();
  return ms;
}

const AUTOSCALE_KEYS = ['min', 'max', 'cpu', 'memory', 'window', 'cooldown', 'cooldown-out', 'cooldown-in'];

/**
 * `--autoscale min=2,max=20,cpu=70%[,memory=80%][,window=5m][,cooldown=30s|cooldown-out=30s,cooldown-in=1m]`
 * → the spec's autoscale policy (the whole policy: on update it replaces the current one); `none` → null
 * (remove it). cpu is a percentage of the task's CPU limit (of one core without one), memory of its
 * memory limit; the `%` is optional.
 */
export function parseAutoscale(s: string, flag = '--autoscale'): AutoscaleDraft | null {
  if (s.trim().toLowerCase() === 'none') return null;
  const out: AutoscaleDraft = {};
  const pct = (v: string, key: string) => {
    const m = /^(\d+)\s*%?$/.exec(v.trim());
    if (!m) throw flagError(flag, `${key}=${v}: expected a percentage such as ${key}=70%`);
    return Number(m[1]);
  };
  for (const { key, value } of csvPairs(s, flag)) {
    if (!AUTOSCALE_KEYS.includes(key)) throw flagError(flag, `unknown key ${q(key)} (use ${AUTOSCALE_KEYS.join(', ')}, or none)`);
    const val = need(value, flag, key);
    switch (key) {
      case 'min':
      case 'max':
        out[key] = parseIntFlag(val, `${flag} ${key}`);
        break;
      case 'cpu':
      case 'memory':
        out[key] = pct(val, key);
        break;
      case 'window':
        out.windowMs = parseDurationGo(val, `${flag} window`);
        break;
      case 'cooldown':
        out.cooldowns = { outMs: parseDurationGo(val, `${flag} cooldown`), inMs: parseDurationGo(val, `${flag} cooldown`) };
        break;
      default: {
        const c = (out.cooldowns ??= {});
        c[key === 'cooldown-out' ? 'outMs' : 'inMs'] = parseDurationGo(val, `${flag} ${key}`);
      }
    }
  }
  if (out.min === undefined || out.max === undefined) throw flagError(flag, 'needs min= and max= (e.g. min=2,max=20,cpu=70%)');
  if (out.cpu === undefined && out.memory === undefined) throw flagError(flag, 'needs a target: cpu=N% and/or memory=N%');
  return out;
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/**
 * Sizes as Docker reads them (binary units): `1024`, `100k`, `512m`, `1g`, `1.5g`, `512MiB`, `4GB`,
 * `100b` → bytes.
 */
export function parseMemory(s: string, flag = 'size'): number {
  const m = /^(\d+(?:\.\d+)?|\.\d+) ?([kmgtp])?(i)?(b)?$/i.exec(s.trim());
  if (!m || (m[3] && !m[2])) throw flagError(flag, `invalid size ${q(s)} (use e.g. 512m, 1g)`);
  const bytes = Math.floor(Number(m[1]) * SIZE_UNITS[(m[2] ?? '').toLowerCase()]!);
  if (!Number.isSafeInteger(bytes)) throw flagError(flag, `size ${q(s)} is too large`);
  return bytes;
}

/** Decimal CPUs → nano CPUs, exactly: `0.5` → 500000000, `2` → 2000000000, `.25`, `1.000000001`. */
export function parseCpus(s: string, flag = 'cpus'): number {
  const m = /^(\d*)(?:\.(\d*))?$/.exec(s.trim());
  if (!m || (m[1] === '' && (m[2] ?? '') === '')) throw flagError(flag, `invalid CPU count ${q(s)} (use e.g. 0.5, 2)`);
  const frac = m[2] ?? '';
  if (frac.length > 9) throw flagError(flag, `CPU count ${q(s)} is too precise (at most 9 decimal places)`);
  const nano = Number(m[1] || '0') * 1e9 + Number(frac.padEnd(9, '0'));
  if (!Number.isSafeInteger(nano)) throw flagError(flag, `CPU count ${q(s)} is too large`);
  return nano;
}

function parseIntFlag(s: string, flag: string): number {
  if (!/^[+-]?\d+$/.test(s.trim())) throw flagError(flag, `invalid number ${q(s)} (expected a whole number)`);
  const n = Number(s.trim());
  if (!Number.isSafeInteger(n)) throw flagError(flag, `number ${q(s)} is too large`);
  return n;
}

function parseFloatFlag(s: string, flag: string): number {
  if (!/^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/.test(s.trim())) throw flagError(flag, `invalid number ${q(s)}`);
  return Number(s.trim());
}

function oneOfFlag<T extends string>(s: string, flag: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(s)) throw flagError(flag, `invalid value ${q(s)} (use ${allowed.join(', ')})`);
  return s as T;
}

/** Splits `a=b,c="d,e"` into fields; double quotes group (a doubled quote is a literal one). Empty fields are dropped. */
function splitCsv(s: string, flag: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quoted) {
      if (c === '"') {
        if (s[i + 1] === '"') {
          cur += '"';
          i++;
        } else quoted = false;
      } else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  if (quoted) throw flagError(flag, `unterminated quote in ${q(s)}`);
  out.push(cur);
  return out.map((f) => f.trim()).filter((f) => f !== '');
}

/** `key=value` fields of a CSV option; a bare key has value undefined. */
function csvPairs(s: string, flag: string): { key: string; value: string | undefined }[] {
  return splitCsv(s, flag).map((f) => {
    const eq = f.indexOf('=');
    return eq < 0 ? { key: f.toLowerCase(), value: undefined } : { key: f.slice(0, eq).trim().toLowerCase(), value: f.slice(eq + 1) };
  });
}

function need(v: string | undefined, flag: string, key: string): string {
  if (v === undefined || v === '') throw flagError(flag, `${key} needs a value (${key}=…)`);
  return v;
}

/** Shell-like word splitting for --entrypoint and --args: quotes and backslashes as in sh, no expansion. */
export function shellSplit(s: string, flag = 'command'): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === ' ' || c === '\t' || c === '\n') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else if (c === "'") {
      const end = s.indexOf("'", i + 1);
      if (end < 0) throw flagError(flag, `unterminated quote in ${q(s)}`);
      cur += s.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < s.length && s[j] !== '"'; j++) {
        if (s[j] === '\\' && j + 1 < s.length && '\\"$`\n'.includes(s[j + 1]!)) j++;
        cur += s[j];
      }
      if (j >= s.length) throw flagError(flag, `unterminated quote in ${q(s)}`);
      i = j;
      inWord = true;
    } else if (c === '\\') {
      if (i + 1 < s.length) cur += s[++i];
      inWord = true;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

const PROTOCOLS = ['tcp', 'udp', 'sctp'] as const;

function portNumber(s: string, flag: string, what: string): number {
  if (!/^\d+$/.test(s) || Number(s) > 65535) throw flagError(flag, `invalid ${what} port ${q(s)} (use 1-65535)`);
  return Number(s);
}

function portRange(s: string, flag: string, what: string): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(s);
  if (!m) throw flagError(flag, `invalid ${what} port ${q(s)} (use a port or a range like 8000-8010)`);
  const lo = portNumber(m[1]!, flag, what);
  const hi = m[2] !== undefined ? portNumber(m[2], flag, what) : lo;
  if (hi < lo) throw flagError(flag, `invalid ${what} port range ${q(s)}`);
  return [lo, hi];
}

/**
 * `-p` / `--publish`: short syntax `[PUBLISHED:]TARGET[/PROTOCOL]` (ranges `8000-8001:80-81` allowed;
 * an empty or missing published port is allocated dynamically) or long syntax
 * `mode=ingress|host,published=8080,target=80,protocol=tcp|udp|sctp`. Returns one PortConfig per port.
 */
export function parsePublish(s: string, flag = '--publish'): PortConfig[] {
  if (s.includes('=')) {
    let target: number | undefined;
    let published: number | undefined;
    let protocol: PortConfig['protocol'] = 'tcp';
    let mode: PortConfig['publishMode'] = 'ingress';
    for (const { key, value } of csvPairs(s, flag)) {
      switch (key) {
        case 'target':
          target = portNumber(need(value, flag, key), flag, 'target');
          break;
        case 'published':
          published = portNumber(need(value, flag, key), flag, 'published');
          break;
        case 'protocol':
          protocol = oneOfFlag(need(value, flag, key), flag, PROTOCOLS);
          break;
        case 'mode':
          mode = oneOfFlag(need(value, flag, key), flag, ['ingress', 'host'] as const);
          break;
        default:
          throw flagError(flag, `unknown option ${q(key)} in ${q(s)} (use mode, published, target, protocol)`);
      }
    }
    if (target === undefined) throw flagError(flag, `target is required in ${q(s)} (e.g. published=8080,target=80)`);
    return [{ protocol, targetPort: target, ...(published ? { publishedPort: published } : {}), publishMode: mode }];
  }
  let body = s.trim();
  let protocol: PortConfig['protocol'] = 'tcp';
  const slash = body.lastIndexOf('/');
  if (slash >= 0) {
    protocol = oneOfFlag(body.slice(slash + 1).toLowerCase(), flag, PROTOCOLS);
    body = body.slice(0, slash);
  }
  const parts = body.split(':');
  if (parts.length > 2) throw flagError(flag, `a host IP is not supported in ${q(s)} (use PUBLISHED:TARGET, or mode=host for host ports)`);
  const [pubText, targetText] = parts.length === 2 ? [parts[0]!, parts[1]!] : ['', parts[0]!];
  const [tlo, thi] = portRange(targetText, flag, 'target');
  const out: PortConfig[] = [];
  if (pubText === '') {
    for (let p = tlo; p <= thi; p++) out.push({ protocol, targetPort: p, publishMode: 'ingress' });
    return out;
  }
  const [plo, phi] = portRange(pubText, flag, 'published');
  if (phi - plo !== thi - tlo) throw flagError(flag, `published and target port ranges differ in size in ${q(s)}`);
  for (let i = 0; i <= thi - tlo; i++) {
    out.push({ protocol, targetPort: tlo + i, ...(plo + i > 0 ? { publishedPort: plo + i } : {}), publishMode: 'ingress' });
  }
  return out;
}

const UNSUPPORTED_MOUNT_OPTIONS = new Set([
  'bind-propagation',
  'bind-recursive',
  'bind-nonrecursive',
  'consistency',
  'volume-driver',
  'volume-label',
  'volume-nocopy',
  'volume-opt',
  'volume-subpath',
  'tmpfs-mode',
  'image-subpath',
]);

/**
 * `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly][,tmpfs-size=64m]`. Aliases: src for
 * source; dst and destination for target; ro for readonly (readonly=true|false|1|0 too). type defaults to
 * volume, as in Docker.
 */
export function parseMount(s: string, flag = '--mount'): MountSpec {
  let type: MountSpec['type'] = 'volume';
  let source: string | undefined;
  let target: string | undefined;
  let readOnly = false;
  let tmpfsSize: number | undefined;
  for (const { key, value } of csvPairs(s, flag)) {
    switch (key) {
      case 'type': {
        const t = need(value, flag, key);
        if (t === 'npipe' || t === 'cluster' || t === 'image') throw flagError(flag, `mount type ${t} is not supported by Shoal (use bind, volume or tmpfs)`);
        type = oneOfFlag(t, flag, ['bind', 'volume', 'tmpfs'] as const);
        break;
      }
      case 'source':
      case 'src':
        source = need(value, flag, key);
        break;
      case 'target':
      case 'dst':
      case 'destination':
        target = need(value, flag, key);
        break;
      case 'readonly':
      case 'ro':
        readOnly = value === undefined ? true : parseBool(value, `${flag} ${key}`);
        break;
      case 'tmpfs-size':
        tmpfsSize = parseMemory(need(value, flag, key), `${flag} tmpfs-size`);
        break;
      default:
        if (UNSUPPORTED_MOUNT_OPTIONS.has(key)) throw flagError(flag, `mount option ${key} is not supported by Shoal`);
        throw flagError(flag, `unknown option ${q(key)} in ${q(s)} (use type, source, target, readonly, tmpfs-size)`);
    }
  }
  if (target === undefined) throw flagError(flag, `target is required in ${q(s)} (e.g. type=volume,source=data,target=/data)`);
  if (type === 'bind' && source === undefined) throw flagError(flag, `a bind mount needs source=<absolute host path> in ${q(s)}`);
  if (type === 'tmpfs' && source !== undefined) throw flagError(flag, `a tmpfs mount takes no source in ${q(s)}`);
  if (tmpfsSize !== undefined && type !== 'tmpfs') throw flagError(flag, `tmpfs-size only applies to type=tmpfs`);
  const m: MountSpec = { type, ...(source !== undefined ? { source } : {}), target };
  if (readOnly) m.readOnly = true;
  if (tmpfsSize) m.tmpfsSizeBytes = tmpfsSize;
  return m;
}

/** `-v SRC:DST[:ro|rw]` or `-v DST` (anonymous volume). An absolute SRC is a bind mount, anything else a named volume. */
export function parseVolume(s: string, flag = '--volume'): MountSpec {
  const parts = s.split(':');
  if (parts.length > 3 || parts.some((p) => p === '')) throw flagError(flag, `invalid volume ${q(s)} (use SRC:DST[:ro], or DST for an anonymous volume)`);
  if (parts.length === 1) return { type: 'volume', target: parts[0]! };
  const [src, dst, opts] = parts as [string, string, string | undefined];
  let readOnly = false;
  for (const o of (opts ?? '').split(',').filter(Boolean)) {
    if (o === 'ro') readOnly = true;
    else if (o === 'rw') readOnly = false;
    else throw flagError(flag, `volume option ${q(o)} is not supported by Shoal (use ro or rw)`);
  }
  const m: MountSpec = { type: src.startsWith('/') ? 'bind' : 'volume', source: src, target: dst };
  if (readOnly) m.readOnly = true;
  return m;
}

/** `--network NAME` or `--network name=NAME,alias=A[,alias=B]` (network= and target= work for name=). */
export function parseNetwork(s: string, flag = '--network'): NetworkAttachmentConfig {
  if (!s.includes('=')) {
    if (s.trim() === '') throw flagError(flag, 'needs a network name');
    return { target: s.trim() };
  }
  let target: string | undefined;
  const aliases: string[] = [];
  for (const { key, value } of csvPairs(s, flag)) {
    if (key === 'name' || key === 'network' || key === 'target') target = need(value, flag, key);
    else if (key === 'alias') aliases.push(need(value, flag, key));
    else if (key === 'driver-opt' || key === 'ip' || key === 'ip6' || key === 'mac-address' || key === 'link-local-ip' || key === 'gw-priority') {
      throw flagError(flag, `network option ${key} is not supported by Shoal`);
    } else throw flagError(flag, `unknown option ${q(key)} in ${q(s)} (use name, alias)`);
  }
  if (target === undefined) throw flagError(flag, `name is required in ${q(s)} (e.g. name=backend,alias=db)`);
  return { target, ...(aliases.length ? { aliases } : {}) };
}

/** `--placement-pref spread=node.labels.zone`. */
export function parsePlacementPref(s: string, flag = '--placement-pref'): { spread: string } {
  const eq = s.indexOf('=');
  const strategy = eq < 0 ? s : s.slice(0, eq);
  if (strategy !== 'spread' || eq < 0 || s.slice(eq + 1).trim() === '') {
    throw flagError(flag, `invalid placement preference ${q(s)} (use spread=node.labels.<name>)`);
  }
  return { spread: s.slice(eq + 1).trim() };
}

function checkConstraint(s: string, flag: string): string {
  try {
    return parseConstraint(s).text;
  } catch (e) {
    if (e instanceof ConstraintError) throw flagError(flag, e.message);
    throw e;
  }
}

function constraintKey(s: string): string {
  try {
    const c = parseConstraint(s);
    return `${c.key}${c.op}${c.value}`;
  } catch {
    return s.trim();
  }
}

/** `KEY=value` or `KEY` (value taken from the environment, as Docker does). */
function envEntry(s: string, flag: string, env: FlagIo['env']): string {
  const eq = s.indexOf('=');
  const key = eq < 0 ? s : s.slice(0, eq);
  if (key.trim() === '') throw flagError(flag, `invalid environment variable ${q(s)} (use KEY=value)`);
  if (/\s/.test(key)) throw flagError(flag, `environment variable name ${q(key)} contains whitespace`);
  if (eq >= 0) return s;
  const v = (env ?? process.env)[key];
  if (v === undefined) throw flagError(flag, `${key} has no value and is not set in this environment (use ${key}=value)`);
  return `${key}=${v}`;
}

const envKey = (e: string) => (e.includes('=') ? e.slice(0, e.indexOf('=')) : e);

/** KEY=value lines of an env file; `#` comments and blank lines are skipped, a bare KEY is taken from the environment if set. */
function readEnvFile(path: string, io: FlagIo): string[] {
  let text: string;
  try {
    text = (io.readFile ?? ((p: string) => readFileSync(p, 'utf8')))(path);
  } catch (e) {
    throw flagError('--env-file', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const out: string[] = [];
  text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .forEach((raw, i) => {
      const line = raw.replace(/^\s+/, '');
      if (line === '' || line.startsWith('#')) return;
      const where = `--env-file ${path}:${i + 1}`;
      const eq = line.indexOf('=');
      const key = eq < 0 ? line.trimEnd() : line.slice(0, eq);
      if (key === '') throw flagError(where, `invalid line ${q(raw)} (use KEY=value)`);
      if (/\s/.test(key)) throw flagError(where, `variable name ${q(key)} contains whitespace`);
      if (eq >= 0) out.push(line);
      else {
        const v = (io.env ?? process.env)[key];
        if (v !== undefined) out.push(`${key}=${v}`);
      }
    });
  return out;
}

/** Sets a map entry even for a key such as __proto__. */
function setKey(o: Record<string, string>, k: string, value: string): void {
  Object.defineProperty(o, k, { value, enumerable: true, writable: true, configurable: true });
}

/** `key=value` or `key` (empty value), as Docker's labels. */
function labelEntry(s: string, flag: string): [string, string] {
  const eq = s.indexOf('=');
  const key = eq < 0 ? s : s.slice(0, eq);
  if (key.trim() === '') throw flagError(flag, `invalid label ${q(s)}: empty key`);
  if (/\s/.test(key)) throw flagError(flag, `label key ${q(key)} contains whitespace`);
  return [key, eq < 0 ? '' : s.slice(eq + 1)];
}

// --------------------------------------------------------------------------------------- flag tables

const UPDATE_POLICY_FLAGS = ['parallelism', 'delay', 'monitor', 'failure-action', 'max-failure-ratio', 'order'];

/** One line of help per update/rollback policy field; `what` is "update" or "rollback". */
const POLICY_HELP: Record<string, (what: string) => [string, string]> = {
  parallelism: (w) => [`Maximum number of tasks changed at once in a ${w} (0: all at once)`, 'N'],
  delay: (w) => [`Delay between ${w}s of task batches (e.g. 10s)`, 'duration'],
  monitor: (w) => [`How long to watch each ${w}d task for failure (e.g. 5s)`, 'duration'],
  'failure-action': (w) => [
    w === 'update' ? 'Action on update failure: pause, continue or rollback' : 'Action on rollback failure: pause or continue',
    'action',
  ],
  'max-failure-ratio': (w) => [`Failure rate to tolerate during a ${w} (0..1)`, 'ratio'],
  order: (w) => [`${w === 'update' ? 'Update' : 'Rollback'} order: stop-first or start-first`, 'order'],
};
const policyFlags = (what: string): FlagDef[] =>
  UPDATE_POLICY_FLAGS.map((f) => {
    const [help, placeholder] = POLICY_HELP[f]!(what);
    return v(`${what}-${f}`, help, { value: placeholder });
  });

/** Flags that set one value: accepted by create and update alike. This list is also their --help. */
const SCALAR_FLAGS: FlagDef[] = [
  b('detach', 'Exit immediately instead of waiting for the service to converge', { short: 'd' }),
  b('quiet', 'Suppress progress output', { short: 'q' }),
  v('replicas', 'Number of tasks', { value: 'N' }),
  v('max-concurrent', 'Number of job tasks to run at once (--mode replicated-job)', { value: 'N' }),
  v('total-completions', 'Number of job tasks that must complete (--mode replicated-job)', { value: 'N' }),
  v('hostname', 'Container hostname'),
  v('workdir', 'Working directory inside the container', { short: 'w', value: 'dir' }),
  v('user', 'Username or UID (format: <name|uid>[:<group|gid>])', { short: 'u' }),
  v('entrypoint', 'Overwrite the default ENTRYPOINT of the image', { value: 'command' }),
  v('limit-cpu', 'Limit CPUs (e.g. 0.5)', { value: 'decimal' }),
  v('limit-memory', 'Limit memory (e.g. 512m)', { value: 'bytes' }),
  v('limit-pids', 'Limit the number of processes (0: unlimited)', { value: 'N' }),
  v('reserve-cpu', 'Reserve CPUs for scheduling', { value: 'decimal' }),
  v('reserve-memory', 'Reserve memory for scheduling', { value: 'bytes' }),
  v('restart-condition', 'Restart when condition is met: none, on-failure or any', { value: 'condition' }),
  v('restart-delay', 'Delay between restart attempts (e.g. 5s)', { value: 'duration' }),
  v('restart-max-attempts', 'Maximum number of restarts before giving up', { value: 'N' }),
  v('restart-window', 'Window used to evaluate the restart policy', { value: 'duration' }),
  v('stop-signal', 'Signal to stop the container (e.g. SIGTERM)', { value: 'signal' }),
  v('stop-grace-period', 'Time to wait before force-killing a container', { value: 'duration' }),
  v('health-cmd', 'Command to run to check health', { value: 'command' }),
  v('health-interval', 'Time between running the check', { value: 'duration' }),
  v('health-timeout', 'Maximum time to allow one check to run', { value: 'duration' }),
  v('health-retries', 'Consecutive failures needed to report unhealthy', { value: 'N' }),
  v('health-start-period', 'Start period before failures count towards the retries', { value: 'duration' }),
  b('no-healthcheck', "Disable the image's HEALTHCHECK"),
  v('replicas-max-per-node', 'Maximum number of tasks per node (0: unlimited)', { value: 'N' }),
  v('autoscale', 'Scale on usage: min=2,max=20,cpu=70%[,memory=80%][,window=5m][,cooldown=30s] (cpu: % of the CPU limit, or of one core), or none', {
    value: 'policy',
  }),
  ...policyFlags('update'),
  ...policyFlags('rollback'),
  v('endpoint-mode', 'Endpoint mode: vip or dnsrr', { value: 'mode' }),
  b('read-only', "Mount the container's root filesystem as read only"),
  b('init', 'Use an init inside each service container to forward signals and reap processes'),
  l('cap-add', 'Add Linux capabilities (e.g. NET_ADMIN, ALL)', { value: 'capability' }),
  l('cap-drop', 'Drop Linux capabilities (e.g. CHOWN, ALL)', { value: 'capability' }),
];

/** `shoal service create` flags (exported: they are the command's --help and completion). */
export const CREATE_FLAGS: FlagDef[] = [
  ...SCALAR_FLAGS,
  v('name', 'Service name'),
  v('mode', 'Service mode: replicated, global, replicated-job or global-job', { value: 'mode' }),
  l('env', 'Set environment variables', { short: 'e', value: 'KEY=value' }),
  l('env-file', 'Read in a file of environment variables', { value: 'file' }),
  l('label', 'Service labels', { short: 'l', value: 'key=value' }),
  l('container-label', 'Container labels', { value: 'key=value' }),
  l('mount', 'Attach a filesystem mount to the service', { value: 'mount' }),
  l('volume', 'Bind mount or named volume (SRC:DST[:ro])', { short: 'v', value: 'volume' }),
  l('constraint', 'Placement constraints (e.g. node.labels.zone==a)', { value: 'expr' }),
  l('placement-pref', 'Add a placement preference (spread=node.labels.KEY)', { value: 'pref' }),
  l('network', 'Network attachments', { value: 'network' }),
  l('publish', 'Publish a port as a node port (e.g. 8080:80)', { short: 'p', value: 'port' }),
  l('secret', 'Specify secrets to expose to the service (NAME or source=,target=,uid=,gid=,mode=)', { value: 'secret' }),
  l('config', 'Specify configurations to expose to the service (NAME or source=,target=,uid=,gid=,mode=)', { value: 'config' }),
  l('sysctl', 'Namespaced kernel parameters (e.g. net.ipv4.ip_forward=1)', { value: 'key=value' }),
  l('ulimit', 'Ulimit options (e.g. nofile=1024:2048)', { value: 'name=soft[:hard]' }),
  l('security-opt', 'Security options: seccomp=unconfined, seccomp=PROFILE.json, no-new-privileges', { value: 'option' }),
];

/** `shoal service update` flags (exported: they are the command's --help and completion). */
export const UPDATE_FLAGS: FlagDef[] = [
  ...SCALAR_FLAGS,
  v('image', 'Service image tag'),
  v('args', 'Service command args', { value: 'command' }),
  b('force', 'Force update even if no changes require it'),
  b('rollback', 'Roll back to the previous specification'),
  ...(
    [
      ['env', 'environment variables', 'KEY=value', 'KEY'],
      ['label', 'service labels', 'key=value', 'key'],
      ['container-label', 'container labels', 'key=value', 'key'],
      ['constraint', 'placement constraints', 'expr', 'expr'],
      ['placement-pref', 'placement preferences', 'pref', 'pref'],
      ['mount', 'mounts', 'mount', 'target'],
      ['publish', 'published ports', 'port', 'port'],
      ['network', 'networks', 'network', 'network'],
      ['secret', 'secrets', 'secret', 'secret'],
      ['config', 'configurations', 'config', 'config'],
      ['sysctl', 'namespaced kernel parameters', 'key=value', 'key'],
      ['ulimit', 'ulimit options', 'name=soft[:hard]', 'name'],
    ] as const
  ).flatMap(([f, what, addValue, rmValue]) => [
    l(`${f}-add`, `Add or update ${what}`, { value: addValue }),
    l(`${f}-rm`, `Remove ${what}`, { value: rmValue }),
  ]),
];

export const UPDATE_HINTS: Record<string, string> = {
  name: 'a service cannot be renamed',
  mode: 'the mode of a service cannot be changed; create a new service',
  'env-file': 'use --env-add KEY=value',
  env: 'use --env-add / --env-rm',
  label: 'use --label-add / --label-rm',
  'container-label': 'use --container-label-add / --container-label-rm',
  constraint: 'use --constraint-add / --constraint-rm',
  'placement-pref': 'use --placement-pref-add / --placement-pref-rm',
  mount: 'use --mount-add / --mount-rm',
  volume: 'use --mount-add / --mount-rm',
  publish: 'use --publish-add / --publish-rm',
  network: 'use --network-add / --network-rm',
  secret: 'use --secret-add / --secret-rm',
  config: 'use --config-add / --config-rm',
};

export const CREATE_HINTS: Record<string, string> = {
  image: 'give the image as the first argument: IMAGE [COMMAND] [ARG...]',
  args: 'give the command after the image: IMAGE [COMMAND] [ARG...]',
  force: 'only for service update',
  rollback: 'only for service update',
};

// ----------------------------------------------------------------------------------- shared building

const HEALTH_VALUE_FLAGS = ['health-cmd', 'health-interval', 'health-timeout', 'health-retries', 'health-start-period'];

/** Applies the scalar flags (create and update alike) to `spec`. Mode flags are handled by the callers. */
function applyScalars(spec: ServiceSpecDraft, p: Parsed): void {
  const t = spec.task;
  const str = (flag: string, setter: (s: string) => void) => {
    const s = last(p, flag);
    if (s !== undefined) setter(s);
  };
  str('autoscale', (s) => {
    const a = parseAutoscale(s);
    if (a) spec.autoscale = a;
    else delete spec.autoscale;
  });
  str('hostname', (s) => (s === '' ? delete t.hostname : (t.hostname = s)));
  str('workdir', (s) => (s === '' ? delete t.workdir : (t.workdir = s)));
  str('user', (s) => (s === '' ? delete t.user : (t.user = s)));
  str('entrypoint', (s) => {
    const words = shellSplit(s, '--entrypoint');
    if (words.length) t.command = words;
    else delete t.command;
  });
  str('stop-signal', (s) => (s === '' ? delete t.stopSignal : (t.stopSignal = s)));
  str('stop-grace-period', (s) => (t.stopGracePeriodMs = parseDurationGo(s, '--stop-grace-period')));

  const limits = () => ((t.resources ??= {}).limits ??= {});
  const reservations = () => ((t.resources ??= {}).reservations ??= {});
  str('limit-cpu', (s) => (limits().nanoCpus = parseCpus(s, '--limit-cpu')));
  str('limit-memory', (s) => (limits().memoryBytes = parseMemory(s, '--limit-memory')));
  str('limit-pids', (s) => (limits().pids = parseIntFlag(s, '--limit-pids')));
  str('reserve-cpu', (s) => (reservations().nanoCpus = parseCpus(s, '--reserve-cpu')));
  str('reserve-memory', (s) => (reservations().memoryBytes = parseMemory(s, '--reserve-memory')));

  const restart = () => (t.restartPolicy ??= {});
  str('restart-condition', (s) => (restart().condition = oneOfFlag(s, '--restart-condition', ['none', 'on-failure', 'any'] as const)));
  str('restart-delay', (s) => (restart().delayMs = parseDurationGo(s, '--restart-delay')));
  str('restart-max-attempts', (s) => (restart().maxAttempts = parseIntFlag(s, '--restart-max-attempts')));
  str('restart-window', (s) => (restart().windowMs = parseDurationGo(s, '--restart-window')));

  // Health check: --no-healthcheck disables the image's check; the --health-* flags set the fields
  // (a check without --health-cmd keeps the image's test and only changes its timing).
  const healthGiven = HEALTH_VALUE_FLAGS.filter((f) => has(p, f));
  const noHealth = p.bools.get('no-healthcheck');
  if (noHealth === true) {
    if (healthGiven.length) throw flagError('--no-healthcheck', `conflicts with --${healthGiven[0]} (and the other --health-* options)`);
    t.healthcheck = { test: ['NONE'] };
  } else if (noHealth === false && t.healthcheck?.test?.[0] === 'NONE') {
    delete t.healthcheck;
  }
  if (healthGiven.length) {
    const hc = (t.healthcheck ??= {});
    if (hc.test?.[0] === 'NONE') hc.test = [];
    hc.test ??= [];
    str('health-cmd', (s) => (hc.test = s.trim() === '' ? [] : ['CMD-SHELL', s]));
    str('health-interval', (s) => (hc.intervalMs = parseDurationGo(s, '--health-interval')));
    str('health-timeout', (s) => (hc.timeoutMs = parseDurationGo(s, '--health-timeout')));
    str('health-retries', (s) => (hc.retries = parseIntFlag(s, '--health-retries')));
    str('health-start-period', (s) => (hc.startPeriodMs = parseDurationGo(s, '--health-start-period')));
  }

  str('replicas-max-per-node', (s) => ((t.placement ??= {}).maxReplicas = parseIntFlag(s, '--replicas-max-per-node')));

  for (const which of ['update', 'rollback'] as const) {
    const cfg = () => (spec[which] ??= {});
    const actions = which === 'update' ? (['pause', 'continue', 'rollback'] as const) : (['pause', 'continue'] as const);
    str(`${which}-parallelism`, (s) => (cfg().parallelism = parseIntFlag(s, `--${which}-parallelism`)));
    str(`${which}-delay`, (s) => (cfg().delayMs = parseDurationGo(s, `--${which}-delay`)));
    str(`${which}-monitor`, (s) => (cfg().monitorMs = parseDurationGo(s, `--${which}-monitor`)));
    str(`${which}-failure-action`, (s) => (cfg().failureAction = oneOfFlag(s, `--${which}-failure-action`, actions)));
    str(`${which}-max-failure-ratio`, (s) => (cfg().maxFailureRatio = parseFloatFlag(s, `--${which}-max-failure-ratio`)));
    str(`${which}-order`, (s) => (cfg().order = oneOfFlag(s, `--${which}-order`, ['stop-first', 'start-first'] as const)));
  }

  str('endpoint-mode', (s) => ((spec.endpoint ??= {}).mode = oneOfFlag(s, '--endpoint-mode', ['vip', 'dnsrr'] as const)));

  // Confinement (create and update alike). Names are checked by the managers (task.capabilityAdd …).
  for (const f of ['read-only', 'init'] as const) {
    const on = p.bools.get(f);
    const key = f === 'read-only' ? 'readOnly' : 'init';
    if (on === true) t[key] = true;
    else if (on === false) delete t[key];
  }
  // --cap-add X also takes X off the drop list and the other way round (Docker's update semantics).
  const capKey = (c: string) => c.trim().toUpperCase().replace(/^CAP_/, '');
  for (const [flag, mine, other] of [
    ['cap-add', 'capabilityAdd', 'capabilityDrop'],
    ['cap-drop', 'capabilityDrop', 'capabilityAdd'],
  ] as const) {
    const given = all(p, flag);
    if (!given.length) continue;
    const keys = new Set(given.map(capKey));
    const rest = (t[other] ?? []).filter((c) => !keys.has(capKey(c)));
    if (rest.length) t[other] = rest;
    else delete t[other];
    t[mine] = [...new Set([...(t[mine] ?? []), ...given])];
  }
}

/** `key=value` of --sysctl. */
function sysctlEntry(s: string, flag: string): [string, string] {
  const i = s.indexOf('=');
  if (i <= 0) throw flagError(flag, `expected KEY=VALUE, e.g. net.ipv4.ip_forward=1 (got ${JSON.stringify(s)})`);
  return [s.slice(0, i).trim(), s.slice(i + 1)];
}

/** `nofile=1024:2048` or `nofile=1024` of --ulimit (-1: unlimited). */
function ulimitEntry(s: string, flag: string): { name: string; soft: number; hard: number } {
  const m = /^\s*([a-z]+)=(-?\d+)(?::(-?\d+))?\s*$/.exec(s);
  if (!m) throw flagError(flag, `expected NAME=SOFT[:HARD], e.g. nofile=1024:2048 (got ${JSON.stringify(s)})`);
  return { name: m[1]!, soft: Number(m[2]), hard: Number(m[3] ?? m[2]) };
}

/** --security-opt: seccomp=unconfined|default|FILE, no-new-privileges (always on in Shoal). */
function applySecurityOpts(t: TaskDraft, opts: string[], io: FlagIo): void {
  for (const o of opts) {
    const [k, val] = o.includes('=') ? [o.slice(0, o.indexOf('=')), o.slice(o.indexOf('=') + 1)] : [o, undefined];
    if (k === 'no-new-privileges') {
      if (val !== undefined && !parseBool(val, '--security-opt no-new-privileges')) {
        throw flagError('--security-opt', 'no-new-privileges=false: Shoal always runs containers with no_new_privs');
      }
    } else if (k === 'seccomp' && val !== undefined && val !== '') {
      if (val === 'unconfined') t.seccomp = { mode: 'unconfined' };
      else if (val === 'default' || val === 'builtin') delete t.seccomp;
      else {
        let profile: string;
        try {
          profile = (io.readFile ?? ((f: string) => readFileSync(f, 'utf8')))(val);
        } catch (e) {
          throw flagError('--security-opt', `seccomp=${val}: cannot read the profile: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
        t.seccomp = { mode: 'custom', profile };
      }
    } else {
      throw flagError('--security-opt', `${JSON.stringify(o)} is not supported (seccomp=unconfined, seccomp=FILE or no-new-privileges)`);
    }
  }
}

function optInt(p: Parsed, name: string): number | undefined {
  const s = last(p, name);
  return s === undefined ? undefined : parseIntFlag(s, `--${name}`);
}

// ------------------------------------------------------------------------------------------- create

/**
 * `shoal service create [OPTIONS] IMAGE [COMMAND] [ARG...]` → a spec draft for POST /v1/services.
 * Throws a FlagError (a CliError naming the flag) for anything it cannot parse.
 */
export function parseServiceCreateArgs(argv: readonly string[], io: FlagIo = {}): ServiceCreateArgs {
  const p = scan(argv, CREATE_FLAGS, { interspersed: false, hints: CREATE_HINTS });
  const [image, ...command] = p.positionals;
  if (image === undefined || image === '') throw flagError('IMAGE', 'required: shoal service create [OPTIONS] IMAGE [COMMAND] [ARG...]');
  const spec: ServiceSpecDraft = { task: { image } };
  const t = spec.task;
  if (command.length) t.args = command;

  const name = last(p, 'name');
  if (name !== undefined) spec.name = name;

  // Mode and counts. For replicated jobs --replicas is the total number of completions (Docker), and
  // --max-concurrent defaults to it, so every task runs at once.
  const modeText = last(p, 'mode') ?? 'replicated';
  const modeName = oneOfFlag(modeText, '--mode', ['replicated', 'global', 'replicated-job', 'global-job'] as const);
  const replicas = optInt(p, 'replicas');
  const maxConcurrent = optInt(p, 'max-concurrent');
  const total = optInt(p, 'total-completions');
  if (modeName !== 'replicated-job') {
    if (maxConcurrent !== undefined) throw flagError('--max-concurrent', `only valid with --mode replicated-job (this is --mode ${modeName})`);
    if (total !== undefined) throw flagError('--total-completions', `only valid with --mode replicated-job (this is --mode ${modeName})`);
  }
  switch (modeName) {
    case 'replicated':
      spec.mode = { replicated: replicas !== undefined ? { replicas } : {} };
      break;
    case 'global':
    case 'global-job':
      if (replicas !== undefined) throw flagError('--replicas', `cannot be used with a global service (--mode ${modeName})`);
      spec.mode = modeName === 'global' ? { global: {} } : { globalJob: {} };
      break;
    case 'replicated-job': {
      if (replicas !== undefined && total !== undefined && replicas !== total) {
        throw flagError('--total-completions', `conflicts with --replicas ${replicas} (for a replicated job --replicas is the total number of completions)`);
      }
      const completions = total ?? replicas;
      const job: { maxConcurrent?: number; totalCompletions?: number } = {};
      if (maxConcurrent !== undefined) job.maxConcurrent = maxConcurrent;
      else if (completions !== undefined && completions >= 1) job.maxConcurrent = completions;
      if (completions !== undefined) job.totalCompletions = completions;
      spec.mode = { replicatedJob: job };
      break;
    }
  }
  if ((modeName === 'global' || modeName === 'global-job') && has(p, 'replicas-max-per-node')) {
    throw flagError('--replicas-max-per-node', 'cannot be used with a global service: it runs one task per node');
  }

  // Labels.
  const labels: Record<string, string> = {};
  for (const s of all(p, 'label')) {
    const [k, val] = labelEntry(s, '--label');
    setKey(labels, k, val);
  }
  if (Object.keys(labels).length) spec.labels = labels;
  const cl: Record<string, string> = {};
  for (const s of all(p, 'container-label')) {
    const [k, val] = labelEntry(s, '--container-label');
    setKey(cl, k, val);
  }
  if (Object.keys(cl).length) t.labels = cl;

  // Environment: files first, then -e, so -e wins for a key set in both (as in Docker).
  const env = [...all(p, 'env-file').flatMap((f) => readEnvFile(f, io)), ...all(p, 'env').map((s) => envEntry(s, '--env', io.env))];
  if (env.length) t.env = env;

  const mounts = [...all(p, 'mount').map((s) => parseMount(s, '--mount')), ...all(p, 'volume').map((s) => parseVolume(s, '--volume'))];
  if (mounts.length) t.mounts = mounts;
  const secrets = all(p, 'secret').map((s) => parseFileRef('secret', s, '--secret'));
  if (secrets.length) t.secrets = secrets;
  const configs = all(p, 'config').map((s) => parseFileRef('config', s, '--config'));
  if (configs.length) t.configs = configs;

  const constraints = all(p, 'constraint').map((s) => checkConstraint(s, '--constraint'));
  if (constraints.length) (t.placement ??= {}).constraints = constraints;
  const prefs = all(p, 'placement-pref').map((s) => parsePlacementPref(s, '--placement-pref'));
  if (prefs.length) (t.placement ??= {}).preferences = prefs;

  const networks = all(p, 'network').map((s) => parseNetwork(s, '--network'));
  if (networks.length) spec.networks = networks;
  const ports = all(p, 'publish').flatMap((s) => parsePublish(s, '--publish'));
  if (ports.length) (spec.endpoint ??= {}).ports = ports;

  const sysctls: Record<string, string> = {};
  for (const s of all(p, 'sysctl')) {
    const [k, val] = sysctlEntry(s, '--sysctl');
    setKey(sysctls, k, val);
  }
  if (Object.keys(sysctls).length) t.sysctls = sysctls;
  const ulimits = new Map(
    all(p, 'ulimit')
      .map((s) => ulimitEntry(s, '--ulimit'))
      .map((u) => [u.name, u]),
  );
  if (ulimits.size) t.ulimits = [...ulimits.values()];
  applySecurityOpts(t, all(p, 'security-opt'), io);

  applyScalars(spec, p);
  return { spec, detach: p.bools.get('detach') ?? false, quiet: p.bools.get('quiet') ?? false };
}

// ------------------------------------------------------------------------------------------- update

/** Flags that may go with --rollback (they shape how the rollback runs, or how the CLI waits). */
const ROLLBACK_COMPATIBLE = new Set(['rollback', 'detach', 'quiet', ...UPDATE_POLICY_FLAGS.flatMap((f) => [`update-${f}`, `rollback-${f}`])]);

const samePort = (a: PortConfig, c: PortConfig) =>
  a.protocol === c.protocol && a.targetPort === c.targetPort && a.publishedPort === c.publishedPort && a.publishMode === c.publishMode;
const normTarget = (s: string) => (s.length > 1 ? s.replace(/\/+$/, '') : s);

/**
 * `shoal service update [OPTIONS] [SERVICE]` applied to the service's current spec → the whole new spec
 * (a fresh copy; `current` is not modified). List edits follow Docker: env, labels, constraints and mounts
 * apply the -add flags then the -rm flags; placement preferences, ports and networks remove first, then add.
 * --force bumps task.forceUpdate so every task is replaced even without another change. --rollback may
 * only be combined with --update-* / --rollback-* and --detach / --quiet; the spec is then returned with
 * only those applied.
 */
export function parseServiceUpdateArgs(argv: readonly string[], current: ServiceSpec | Frozen<ServiceSpec>, io: FlagIo = {}): ServiceUpdateArgs {
  const p = scan(argv, UPDATE_FLAGS, { interspersed: true, hints: UPDATE_HINTS });
  if (p.positionals.length > 1) throw flagError('SERVICE', `service update takes one service (got ${p.positionals.map(q).join(', ')})`);
  const rollback = p.bools.get('rollback') ?? false;
  if (rollback) {
    const other = p.given.find((g) => !ROLLBACK_COMPATIBLE.has(g));
    if (other) throw flagError('--rollback', `cannot be combined with --${other} (only with --update-*, --rollback-*, --detach and --quiet)`);
  }
  const spec = structuredClone(current) as ServiceSpecDraft;
  const t = spec.task;

  const image = last(p, 'image');
  if (image !== undefined) t.image = image;
  const args = last(p, 'args');
  if (args !== undefined) {
    const words = shellSplit(args, '--args');
    if (words.length) t.args = words;
    else delete t.args;
  }

  // Counts, within the service's mode (the mode itself cannot change).
  const replicas = optInt(p, 'replicas');
  const maxConcurrent = optInt(p, 'max-concurrent');
  const total = optInt(p, 'total-completions');
  const mode = spec.mode ?? { replicated: {} };
  if ('replicatedJob' in mode) {
    if (replicas !== undefined && total !== undefined && replicas !== total) {
      throw flagError('--total-completions', `conflicts with --replicas ${replicas} (for a replicated job --replicas is the total number of completions)`);
    }
    const completions = total ?? replicas;
    if (completions !== undefined) mode.replicatedJob.totalCompletions = completions;
    if (maxConcurrent !== undefined) mode.replicatedJob.maxConcurrent = maxConcurrent;
  } else {
    const kind = 'replicated' in mode ? 'replicated' : 'global' in mode ? 'global' : 'global-job';
    if (maxConcurrent !== undefined) throw flagError('--max-concurrent', `only valid for a replicated job (this service is ${kind})`);
    if (total !== undefined) throw flagError('--total-completions', `only valid for a replicated job (this service is ${kind})`);
    if (replicas !== undefined) {
      if (!('replicated' in mode)) throw flagError('--replicas', `cannot be used with a global service (this service is ${kind})`);
      mode.replicated.replicas = replicas;
    }
  }
  spec.mode = mode;

  applyScalars(spec, p);

  // Environment: add (replacing a variable with the same name, in place), then remove by name.
  if (has(p, 'env-add') || has(p, 'env-rm')) {
    let env = [...(t.env ?? [])];
    for (const s of all(p, 'env-add')) {
      const e = envEntry(s, '--env-add', io.env);
      const i = env.findIndex((x) => envKey(x) === envKey(e));
      if (i >= 0) env[i] = e;
      else env.push(e);
    }
    const rm = new Set(all(p, 'env-rm').map(envKey));
    env = env.filter((x) => !rm.has(envKey(x)));
    if (env.length) t.env = env;
    else delete t.env;
  }

  // Labels (service) and container labels (task): add, then remove by key.
  const editLabels = (cur: Record<string, string> | undefined, add: string, rm: string): Record<string, string> | undefined => {
    if (!has(p, add) && !has(p, rm)) return cur;
    const out = { ...(cur ?? {}) };
    for (const s of all(p, add)) {
      const [k, val] = labelEntry(s, `--${add}`);
      setKey(out, k, val);
    }
    for (const k of all(p, rm)) delete out[k];
    return out;
  };
  spec.labels = editLabels(spec.labels, 'label-add', 'label-rm') ?? {};
  const tl = editLabels(t.labels, 'container-label-add', 'container-label-rm');
  if (tl && Object.keys(tl).length) t.labels = tl;
  else delete t.labels;

  // Placement: constraints add then remove; preferences remove then add (appended after the existing ones).
  if (has(p, 'constraint-add') || has(p, 'constraint-rm')) {
    const cs = [...(t.placement?.constraints ?? [])];
    for (const s of all(p, 'constraint-add')) {
      const c = checkConstraint(s, '--constraint-add');
      if (!cs.some((x) => constraintKey(x) === constraintKey(c))) cs.push(c);
    }
    const rm = new Set(all(p, 'constraint-rm').map(constraintKey));
    const kept = cs.filter((x) => !rm.has(constraintKey(x)));
    const pl = (t.placement ??= {});
    if (kept.length) pl.constraints = kept;
    else delete pl.constraints;
  }
  if (has(p, 'placement-pref-add') || has(p, 'placement-pref-rm')) {
    const rm = new Set(all(p, 'placement-pref-rm').map((s) => parsePlacementPref(s, '--placement-pref-rm').spread));
    const prefs = (t.placement?.preferences ?? []).filter((x) => !rm.has(x.spread));
    prefs.push(...all(p, 'placement-pref-add').map((s) => parsePlacementPref(s, '--placement-pref-add')));
    const pl = (t.placement ??= {});
    if (prefs.length) pl.preferences = prefs;
    else delete pl.preferences;
  }
  if (t.placement && Object.keys(t.placement).length === 0) delete t.placement;

  // Sysctls and ulimits: add (replacing the same key), then remove by key.
  if (has(p, 'sysctl-add') || has(p, 'sysctl-rm')) {
    const sc: Record<string, string> = { ...(t.sysctls ?? {}) };
    for (const s of all(p, 'sysctl-add')) {
      const [k, val] = sysctlEntry(s, '--sysctl-add');
      setKey(sc, k, val);
    }
    for (const k of all(p, 'sysctl-rm')) delete sc[k.trim()];
    if (Object.keys(sc).length) t.sysctls = sc;
    else delete t.sysctls;
  }
  if (has(p, 'ulimit-add') || has(p, 'ulimit-rm')) {
    const ul = new Map((t.ulimits ?? []).map((u) => [u.name, u]));
    for (const s of all(p, 'ulimit-add')) {
      const u = ulimitEntry(s, '--ulimit-add');
      ul.set(u.name, u);
    }
    for (const n of all(p, 'ulimit-rm')) ul.delete(n.trim().replace(/=.*$/, ''));
    if (ul.size) t.ulimits = [...ul.values()];
    else delete t.ulimits;
  }

  // Mounts: add (replacing the mount at the same target, in place), then remove by target.
  if (has(p, 'mount-add') || has(p, 'mount-rm')) {
    let mounts = [...(t.mounts ?? [])];
    for (const s of all(p, 'mount-add')) {
      const m = parseMount(s, '--mount-add');
      const i = mounts.findIndex((x) => normTarget(x.target) === normTarget(m.target));
      if (i >= 0) mounts[i] = m;
      else mounts.push(m);
    }
    const rm = new Set(all(p, 'mount-rm').map(normTarget));
    mounts = mounts.filter((x) => !rm.has(normTarget(x.target)));
    if (mounts.length) t.mounts = mounts;
    else delete t.mounts;
  }

  // Ports: remove by target port (and protocol; and mode when the long syntax names one), then add.
  if (has(p, 'publish-add') || has(p, 'publish-rm')) {
    const ep = (spec.endpoint ??= {});
    let ports = [...(ep.ports ?? [])];
    for (const s of all(p, 'publish-rm')) {
      const explicitMode = s.includes('=') && /(^|,)\s*mode=/.test(s);
      for (const r of parsePublish(s, '--publish-rm')) {
        ports = ports.filter((x) => !(x.targetPort === r.targetPort && x.protocol === r.protocol && (!explicitMode || x.publishMode === r.publishMode)));
      }
    }
    for (const s of all(p, 'publish-add')) {
      for (const a of parsePublish(s, '--publish-add')) if (!ports.some((x) => samePort(x, a))) ports.push(a);
    }
    ep.ports = ports;
  }

  // Networks: remove by name, then add (refusing one the service is still attached to).
  if (has(p, 'network-add') || has(p, 'network-rm')) {
    const rm = new Set(all(p, 'network-rm'));
    const nets = (spec.networks ?? []).filter((n) => !rm.has(n.target));
    for (const s of all(p, 'network-add')) {
      const n = parseNetwork(s, '--network-add');
      if (nets.some((x) => x.target === n.target)) throw flagError('--network-add', `the service is already attached to network ${n.target}`);
      nets.push(n);
    }
    spec.networks = nets;
  }

  // Secrets and configs (Docker's order): remove by name, then add, replacing one at the same target;
  // so `--secret-rm old --secret-add source=new,target=old` rotates a secret in one rolling update.
  for (const kind of ['secret', 'config'] as const) {
    if (!has(p, `${kind}-add`) && !has(p, `${kind}-rm`)) continue;
    const rm = new Set(all(p, `${kind}-rm`));
    const path = (r: { secretName?: string; configName?: string; target: { name?: string } }) => {
      const n = r.target.name || (kind === 'secret' ? refName(r) : `/${refName(r)}`);
      return kind === 'secret' && !n.startsWith('/') ? `/run/secrets/${n}` : n;
    };
    type Ref = { secretName?: string; configName?: string; target: { name?: string } };
    let refs = ((kind === 'secret' ? t.secrets : t.configs) ?? []) as Ref[];
    refs = refs.filter((r) => !rm.has(refName(r)));
    for (const s of all(p, `${kind}-add`)) {
      const a = parseFileRef(kind as 'secret', s, `--${kind}-add`) as Ref;
      const i = refs.findIndex((r) => path(r) === path(a));
      if (i >= 0) refs[i] = a;
      else refs.push(a);
    }
    if (kind === 'secret') {
      if (refs.length) t.secrets = refs as TaskDraft['secrets'];
      else delete t.secrets;
    } else if (refs.length) t.configs = refs as TaskDraft['configs'];
    else delete t.configs;
  }

  const force = p.bools.get('force') ?? false;
  if (force) t.forceUpdate = (t.forceUpdate ?? 0) + 1;

  const out: ServiceUpdateArgs = { spec, force, detach: p.bools.get('detach') ?? false, quiet: p.bools.get('quiet') ?? false, rollback };
  if (p.positionals[0] !== undefined) out.service = p.positionals[0];
  return out;
}

/** The SERVICE positional of a `service update` argv (flags may come before or after it), or undefined. */
export function serviceUpdateTarget(argv: readonly string[]): string | undefined {
  return scan(argv, UPDATE_FLAGS, { interspersed: true, hints: UPDATE_HINTS }).positionals[0];
}
