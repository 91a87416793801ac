// The value formats compose files use for durations, sizes and CPU counts, turned into the units of
// Shoal's service spec (milliseconds, bytes, nano-CPUs). Each parser returns a number or an error
// message (a string) for the schema to place at file:line:key; none throws.
//
// The CLI parses the same formats for its flags (cli/service-flags.ts, with CLI errors that name a flag);
// these return messages for the schema to place at file:line:key instead. Sizes are binary (`512M`,
// `1gb`, a plain integer is bytes); durations are Go durations (`1m30s`, `500ms`), which Docker's loader
// reads with time.ParseDuration.

export type Parsed = { ok: true; value: number } | { ok: false; message: string };

const ok = (value: number): Parsed => ({ ok: true, value });
const no = (message: string): Parsed => ({ ok: false, message });

const DURATION_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `10s`, `1m30s`, `1.5h`, `500ms`, `0` → milliseconds (rounded; a positive value under 1 ms becomes 1). */
export function parseDuration(v: string | number): Parsed {
  if (typeof v === 'number') {
    return v === 0 ? ok(0) : no(`must be a duration such as 10s or 1m30s, got ${v} (a number without a unit)`);
  }
  let rest = v.trim();
  const bad = () => no(`must be a duration such as 10s, 1m30s or 500ms, got ${JSON.stringify(v)}`);
  if (rest.startsWith('-')) return no(`must not be negative, got ${JSON.stringify(v)}`);
  if (rest.startsWith('+')) rest = rest.slice(1);
  if (rest === '0') return ok(0);
  if (rest === '') return bad();
  let total = 0;
  const re = /^(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;
  while (rest !== '') {
    const m = re.exec(rest);
    if (!m) return bad();
    total += Number(m[1]) * DURATION_MS[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  const ms = total > 0 && total < 1 ? 1 : Math.round(total);
  return Number.isSafeInteger(ms) ? ok(ms) : bad();
}

const SIZE: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/**
 * `512m`, `1gb`, `100k`, `1.5g`, `512MiB`, `1 GB`, `1024` → bytes. Binary units whatever the spelling,
 * as Docker's loader reads memory sizes (go-units RAMInBytes: k, m, g, t, p, an optional i and b).
 */
export function parseBytes(v: string | number): Parsed {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? ok(v) : no(`must be a size such as 512M or 1G, got ${v}`);
  const m = /^(\d+(?:\.\d+)?|\.\d+) ?([kmgtp])?(i)?(b)?$/i.exec(v.trim());
  if (!m || (m[3] && !m[2])) return no(`must be a size such as 512M, 1G or 100k, got ${JSON.stringify(v)}`);
  const bytes = Math.floor(Number(m[1]) * SIZE[(m[2] ?? '').toLowerCase()]!);
  return Number.isSafeInteger(bytes) ? ok(bytes) : no(`size ${JSON.stringify(v)} is too large`);
}

/** `0.5`, `"2"`, `1.25` → nano-CPUs, exactly (at most 9 decimal places). */
export function parseCpus(v: string | number): Parsed {
  const s = typeof v === 'number' ? String(v) : v.trim();
  const m = /^(\d*)(?:\.(\d*))?$/.exec(s);
  if (!m || (m[1] === '' && (m[2] ?? '') === '')) return no(`must be a number of CPUs such as 0.5 or 2, got ${JSON.stringify(v)}`);
  const frac = m[2] ?? '';
  if (frac.length > 9) return no(`has more than 9 decimal places: ${JSON.stringify(v)}`);
  const nano = Number(m[1] || '0') * 1e9 + Number(frac.padEnd(9, '0'));
  return Number.isSafeInteger(nano) ? ok(nano) : no(`is too large: ${JSON.stringify(v)}`);
}
