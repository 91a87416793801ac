// Filter matching shared by Docker's list filters (docker-api/filters.ts) and the event filters
// (events/filter.ts): the values given for one key are alternatives (OR), except labels, which must all
// match (AND), as Docker does. Labels are `key` (present) or `key=value`. Pure.

/** True when no values are given, or `test` accepts one of them. */
export function anyValue(values: readonly string[] | undefined, test: (v: string) => boolean): boolean {
  return !values || values.length === 0 || values.some(test);
}

/** Label filter value `key` or `key=value` against a label map. */
export const labelMatch = (labels: Readonly<Record<string, string>> | undefined) => (v: string) => {
  const eq = v.indexOf('=');
  const l = labels ?? {};
  if (eq < 0) return v in l;
  return l[v.slice(0, eq)] === v.slice(eq + 1);
};

/** True when every label filter value matches `labels` (none given: true). */
export function everyLabel(values: readonly string[] | undefined, labels: Readonly<Record<string, string>> | undefined): boolean {
  return !values || values.every(labelMatch(labels));
}
