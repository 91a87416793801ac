// The Docker Engine API's units and spellings, in one place: durations are integer nanoseconds
// (Shoal keeps milliseconds), times are RFC 3339 with up to nine fractional digits (Shoal keeps
// ISO-8601 from Date, which is a valid instance), and architectures are Go's names (`amd64`,
// `arm64`) where Node says `x64` and uname `x86_64`. Pure functions only.

/** Docker duration (ns) → Shoal milliseconds; absent stays absent. */
export function nsToMs(ns: unknown): number | undefined {
  if (typeof ns !== 'number' || !Number.isFinite(ns)) return undefined;
  return Math.round(ns / 1e6);
}

/** Shoal milliseconds → Docker duration (ns); absent stays absent. */
export function msToNs(ms: number | undefined): number | undefined {
  return ms === undefined ? undefined : ms * 1e6;
}

/** Go's zero time: what Docker sends for "never". */
export const ZERO_TIME = '0001-01-01T00:00:00Z';

/** A Shoal ISO time as Docker's RFC3339Nano (Date's ISO form already is one); absent → Go's zero time. */
export function dockerTime(iso: string | undefined): string {
  if (!iso) return ZERO_TIME;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? ZERO_TIME : iso;
}

/** Architecture names as Docker reports them (`docker info`, node inspect): Node's x64 is x86_64. */
export function dockerArch(arch: string): string {
  const a = arch.toLowerCase();
  if (a === 'x64' || a === 'amd64' || a === 'x86-64') return 'x86_64';
  if (a === 'arm64' || a === 'arm64/v8') return 'aarch64';
  if (a === 'ia32') return 'i386';
  return arch;
}

/** Architecture names as image platforms use them (Go's GOARCH): `x86_64` and `x64` are `amd64`. */
export function goArch(arch: string): string {
  const a = arch.toLowerCase();
  if (a === 'x64' || a === 'x86_64' || a === 'x86-64') return 'amd64';
  if (a === 'aarch64' || a === 'arm64/v8') return 'arm64';
  if (a === 'ia32' || a === 'i386' || a === 'i686') return '386';
  return a;
}

/** Drops keys whose value is undefined (Shoal's validators treat a present key as given). */
export function compact<T extends Record<string, unknown>>(o: T): T {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}

/** Docker's booleans in query strings: 1/true/True (anything else is false). */
export function queryBool(v: string | null): boolean {
  return v !== null && ['1', 'true', 'True', 'TRUE', 'yes'].includes(v);
}
