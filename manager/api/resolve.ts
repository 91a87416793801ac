// How a user names an object on the command line: its full id, its name, or a unique prefix of its
// id (as Docker does). One rule for every kind, so `node rm`, `service inspect` and `network rm`
// agree on what "ambiguous" means: a name two objects share, or a prefix two ids share, is a 400
// naming the count, never a silent first match.
import { badRequest, notFound } from './http.ts';

export function resolveRef<T extends { readonly id: string }>(kind: string, all: readonly T[], ref: string, nameOf: (o: T) => string | undefined): T {
  const byId = all.find((o) => o.id === ref);
  if (byId) return byId;
  const named = all.filter((o) => nameOf(o) === ref);
  if (named.length === 1) return named[0]!;
  if (named.length > 1) throw badRequest(`${kind} name ${ref} is ambiguous (${named.length} ${kind}s have it); use the id`);
  const prefix = all.filter((o) => o.id.startsWith(ref));
  if (prefix.length === 1) return prefix[0]!;
  if (prefix.length > 1) throw badRequest(`${kind} reference ${ref} is ambiguous (${prefix.length} ${kind}s match)`);
  throw notFound(`${kind} ${ref} not found`);
}
