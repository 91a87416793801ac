// Docker's list filters: the `filters` query parameter is JSON of `map[string]map[string]bool`
// (`{"name":{"web":true}}`), older clients send `map[string][]string`. Every value of one key is an
// alternative (OR), different keys must all match (AND). Names and ids match by prefix, as the engine
// does; labels as `key` (present) or `key=value`. Unknown keys are refused with 400, as the engine
// refuses them, so a typo never silently lists everything. Pure.
import { badRequest } from '../api/http.ts';
import { anyValue, everyLabel, labelMatch } from '../filters.ts';

export { labelMatch };

export type Filters = ReadonlyMap<string, readonly string[]>;

const MAX_FILTER_BYTES = 64 << 10;

/** Parses the `filters` parameter, refusing keys outside `allowed`. */
export function parseFilters(raw: string | null, allowed: readonly string[]): Filters {
  const out = new Map<string, string[]>();
  if (raw === null || raw === '') return out;
  if (raw.length > MAX_FILTER_BYTES) throw badRequest(`filters is ${raw.length} bytes; at most ${MAX_FILTER_BYTES} are accepted`);
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw badRequest('filters is not valid JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw badRequest('filters must be a JSON object');
  for (const [k, vals] of Object.entries(v as Record<string, unknown>)) {
    if (!allowed.includes(k)) throw badRequest(`invalid filter '${k}'`);
    let list: string[];
    if (Array.isArray(vals)) list = vals.filter((x): x is string => typeof x === 'string');
    else if (typeof vals === 'object' && vals !== null)
      list = Object.entries(vals as Record<string, unknown>)
        .filter(([, b]) => b === true)
        .map(([s]) => s);
    else throw badRequest(`filter '${k}' must map values to true`);
    out.set(k, list);
  }
  return out;
}

/** True when the filter has no values for `key`, or `test` accepts one of them. */
export function anyOf(f: Filters, key: string, test: (v: string) => boolean): boolean {
  return anyValue(f.get(key), test);
}

/** Prefix match (names and ids), as the engine's list filters do. */
export const prefixOf = (actual: string | undefined) => (v: string) => actual !== undefined && actual.startsWith(v);

/** Label filters are ANDed among themselves (every given label must match), unlike other keys. */
export function allLabels(f: Filters, key: string, labels: Readonly<Record<string, string>> | undefined): boolean {
  return everyLabel(f.get(key), labels);
}
