// Control API for secrets and configs: create, ls, inspect, update (labels only), rm — one set of rules
// for both kinds, as Docker has. The difference is the data: a secret's is sealed with the managers'
// data-encryption key (manager/keys) before it is proposed, so the Raft log and snapshots never hold it
// in plaintext, and no answer ever contains it; a config's is stored as given and inspect shows it.
//
// Also here: resolveFileRefs, which a service create/update calls inside its write transaction so a
// service can only reference secrets and configs that exist, and `rm` (same store, same transaction
// ordering) refuses while a service references one, naming the services.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Config, ConfigReference, Frozen, Secret, SecretReference, ServiceSpec } from '../../api/objects.ts';
import { CLUSTER_ID } from '../../api/objects.ts';
import type { ReadTx, Store } from '../store/store.ts';
import { checkLabels, checkName, limitsOf } from '../store/limits.ts';
import type { KeyRing } from '../keys/keyring.ts';
import { targetPath } from '../../api/file-refs.ts';
import { ApiError, BODY_LIMITS, badRequest, conflict, readJson, tooLarge, type Router } from './http.ts';
import { resolveRef } from './resolve.ts';

/** Docker's limit on a secret's or config's data (swarmkit MaxSecretSize). */
export const MAX_DATA_BYTES = 500 * 1024;
const NAME_RE = /^[a-zA-Z0-9](?:[a-zA-Z0-9_.-]*[a-zA-Z0-9])?$/;
const NAME_MAX = 64;

export type FileKind = 'secret' | 'config';

export interface SecretApiDeps {
  store: Store;
  newId: () => string;
  requireLeader: () => void;
  linearizable: () => Promise<void>;
  write: (fn: Parameters<Store['update']>[0]) => Promise<void>;
  /** The managers' key ring; null until this manager has it (a joining manager fetches it first). */
  keys: () => KeyRing | null;
  random?: (n: number) => Buffer;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function got(v: unknown): string {
  return v === undefined
    ? 'nothing'
    : typeof v === 'string'
      ? JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v)
      : Array.isArray(v)
        ? 'an array'
        : v === null
          ? 'null'
          : typeof v;
}

function validName(kind: FileKind, v: unknown): string {
  if (typeof v !== 'string' || v === '') throw badRequest(`${kind} name is required`, { field: 'name' });
  if (v.length > NAME_MAX || !NAME_RE.test(v)) {
    throw badRequest(`${kind} name ${got(v)} is invalid: up to ${NAME_MAX} letters, digits, '_', '.' and '-', starting and ending with a letter or digit`, {
      field: 'name',
    });
  }
  return v;
}

function validLabels(v: unknown): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isRecord(v)) throw badRequest(`labels must be an object of strings (got ${got(v)})`, { field: 'labels' });
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === '') throw badRequest('labels: a label key cannot be empty', { field: 'labels' });
    if (typeof x !== 'string') throw badRequest(`labels.${k} must be a string (got ${got(x)})`, { field: `labels.${k}` });
    out[k] = x;
  }
  return out;
}

/** Strict base64 (what `Buffer.toString('base64')` produces), decoded; 413 past MAX_DATA_BYTES. */
export function decodeData(kind: FileKind, v: unknown): Buffer {
  if (typeof v !== 'string') throw badRequest(`data must be the ${kind}'s contents in base64 (got ${got(v)})`, { field: 'data' });
  if (v.length > Math.ceil((MAX_DATA_BYTES * 4) / 3) + 4)
    throw tooLarge(`${kind} data is larger than the limit of ${MAX_DATA_BYTES} bytes (500 KiB)`, { limit: MAX_DATA_BYTES });
  const b = Buffer.from(v, 'base64');
  if (b.toString('base64') !== v) throw badRequest(`data is not valid base64`, { field: 'data' });
  if (b.length === 0) throw badRequest(`${kind} data must not be empty`, { field: 'data' });
  if (b.length > MAX_DATA_BYTES)
    throw tooLarge(`${kind} data is ${b.length} bytes, over the limit of ${MAX_DATA_BYTES} bytes (500 KiB)`, { limit: MAX_DATA_BYTES });
  return b;
}

function ringOrFail(d: SecretApiDeps): KeyRing {
  const r = d.keys();
  if (!r) throw new ApiError(503, 'ENOKEYS', 'this manager does not have the data-encryption key yet; retry in a moment');
  return r;
}

/** A secret as the API shows it: never its data, sealed or not. */
export function secretView(s: Frozen<Secret>): unknown {
  return { id: s.id, kind: s.kind, version: s.version, createdAt: s.createdAt, updatedAt: s.updatedAt, spec: { name: s.spec.name, labels: s.spec.labels } };
}

function view(kind: FileKind, o: Frozen<Secret> | Frozen<Config>): unknown {
  return kind === 'secret' ? secretView(o as Frozen<Secret>) : o;
}

function findFile(tx: ReadTx, kind: FileKind, ref: string): Frozen<Secret> | Frozen<Config> {
  const all = kind === 'secret' ? tx.list('secret') : tx.list('config');
  return resolveRef<Frozen<Secret> | Frozen<Config>>(kind, all, ref, (o) => o.spec.name);
}

/** Names of the services whose task template references the secret/config `id`. */
export function usersOf(tx: ReadTx, kind: FileKind, id: string): string[] {
  return tx
    .list('service', (s) =>
      kind === 'secret' ? (s.spec.task.secrets ?? []).some((r) => r.secretId === id) : (s.spec.task.configs ?? []).some((r) => r.configId === id),
    )
    .map((s) => s.spec.name)
    .sort();
}

/**
 * Fills in the id and name of every secret/config a spec references, and default target names that
 * needed the name; 400 naming the reference when one does not exist. Called inside the service's
 * write transaction, so the references and a concurrent `rm` are ordered by Raft.
 */
export function resolveFileRefs(tx: ReadTx, spec: ServiceSpec): void {
  const resolveOne = <R extends SecretReference | ConfigReference>(kind: FileKind, r: R, i: number): R => {
    const id = kind === 'secret' ? (r as SecretReference).secretId : (r as ConfigReference).configId;
    const name = kind === 'secret' ? (r as SecretReference).secretName : (r as ConfigReference).configName;
    const field = `task.${kind}s[${i}]`;
    const obj = (id !== '' ? tx.get(kind, id) : undefined) ?? (name !== '' ? tx.byName(kind, name) : undefined);
    if (!obj) throw badRequest(`${field}: ${kind} ${name || id} not found`, { field });
    if (id !== '' && name !== '' && obj.spec.name !== name && obj.id === id)
      throw badRequest(`${field}: ${kind} ${id} is named ${obj.spec.name}, not ${name}`, { field });
    const targetName = r.target.name !== '' ? r.target.name : kind === 'secret' ? obj.spec.name : `/${obj.spec.name}`;
    return kind === 'secret'
      ? ({ secretId: obj.id, secretName: obj.spec.name, target: { ...r.target, name: targetName } } as R)
      : ({ configId: obj.id, configName: obj.spec.name, target: { ...r.target, name: targetName } } as R);
  };
  const t = spec.task;
  if (t.secrets) t.secrets = t.secrets.map((r, i) => resolveOne('secret', r, i));
  if (t.configs) t.configs = t.configs.map((r, i) => resolveOne('config', r, i));
  // Targets filled in just now (from an id) may collide with others.
  const seen = new Map<string, string>();
  const check = (path: string, field: string) => {
    const prev = seen.get(path);
    if (prev !== undefined) throw badRequest(`${field}: target ${path} is used twice (also by ${prev})`, { field });
    seen.set(path, field);
  };
  (t.secrets ?? []).forEach((r, i) => {
    check(targetPath('secret', r.target.name), `task.secrets[${i}].target.name`);
  });
  (t.configs ?? []).forEach((r, i) => {
    check(targetPath('config', r.target.name), `task.configs[${i}].target.name`);
  });
}

function registerKind<C>(r: Router<C>, d: SecretApiDeps, kind: FileKind): void {
  const base = `/v1/${kind}s`;
  const random = d.random ?? randomBytes;

  r.add('POST', base, async (_c, _p, req) => {
    const body = (await readJson(req, BODY_LIMITS.spec)) as Record<string, unknown>;
    for (const k of Object.keys(body))
      if (!['name', 'labels', 'data'].includes(k)) throw badRequest(`${k}: unknown field (known fields: name, labels, data)`, { field: k });
    const name = validName(kind, body['name']);
    const labels = validLabels(body['labels']);
    const data = decodeData(kind, body['data']);
    d.requireLeader();
    const id = d.newId();
    const stored = kind === 'secret' ? ringOrFail(d).seal(data, { kind: 'secret', id }, random) : data.toString('base64');
    data.fill(0);
    await d.write((tx) => {
      const limits = limitsOf(tx.get('cluster', CLUSTER_ID)?.spec);
      checkName(name, limits, 'name');
      checkLabels(labels, limits, 'labels');
      // A name in use fails here with NameInUseError: 409 (errors.ts).
      tx.create({ id, kind, spec: { name, labels, data: stored }, status: {} } as never);
    });
    return { id, name };
  });

  r.add('GET', base, async () => {
    await d.linearizable();
    return d.store.view((tx) => (kind === 'secret' ? tx.list('secret') : tx.list('config')).map((o) => view(kind, o)));
  });

  r.add('GET', `${base}/:ref`, async (_c, p) => {
    await d.linearizable();
    return d.store.view((tx) => view(kind, findFile(tx, kind, p.ref!)));
  });

  // Docker: "only updates to Labels are allowed"; resending the same name and data (a stack redeploy) passes.
  r.add('POST', `${base}/:ref/update`, async (_c, p, req) => {
    const body = (await readJson(req, BODY_LIMITS.spec)) as Record<string, unknown>;
    for (const k of Object.keys(body))
      if (!['version', 'name', 'labels', 'data'].includes(k)) throw badRequest(`${k}: unknown field (known fields: version, name, labels, data)`, { field: k });
    const version = body['version'];
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0) {
      throw badRequest(`version must be the non-negative integer version you read (got ${got(version)})`, { field: 'version' });
    }
    const labels = validLabels(body['labels']);
    const data = body['data'] === undefined ? null : decodeData(kind, body['data']);
    d.requireLeader();
    const ring = kind === 'secret' && data !== null ? ringOrFail(d) : null;
    let out: { id: string; version: number } | null = null;
    await d.write((tx) => {
      const cur = findFile(tx, kind, p.ref!);
      if (cur.version !== version)
        throw conflict(
          `${kind} ${cur.spec.name} changed since you read it (update out of sequence: sent version ${version}, current version ${cur.version}); read it again and retry`,
        );
      if (body['name'] !== undefined && body['name'] !== cur.spec.name)
        throw badRequest(`only updates to labels are allowed (the name of ${kind} ${cur.spec.name} cannot change)`, { field: 'name' });
      if (data !== null) {
        const old =
          kind === 'secret'
            ? ring!.open((cur as Frozen<Secret>).spec.data, { kind: 'secret', id: cur.id })
            : Buffer.from((cur as Frozen<Config>).spec.data, 'base64');
        const same = old.length === data.length && timingSafeEqual(old, data);
        old.fill(0);
        if (!same)
          throw badRequest(`only updates to labels are allowed (the data of ${kind} ${cur.spec.name} cannot change; create a new ${kind} and rotate to it)`, {
            field: 'data',
          });
      }
      checkLabels(labels, limitsOf(tx.get('cluster', CLUSTER_ID)?.spec), 'labels');
      const next = { ...cur, spec: { ...cur.spec, labels } };
      const w = tx.update(next as never) as Frozen<Secret>;
      out = { id: w.id, version: cur.version };
    });
    data?.fill(0);
    return out;
  });

  r.add('DELETE', `${base}/:ref`, async (_c, p) => {
    d.requireLeader();
    let removed: { removed: string; name: string } | null = null;
    await d.write((tx) => {
      const cur = findFile(tx, kind, p.ref!);
      const users = usersOf(tx, kind, cur.id);
      if (users.length > 0) {
        throw conflict(
          `${kind} ${cur.spec.name} is in use by service${users.length > 1 ? 's' : ''} ${users.join(', ')}: remove it from ${users.length > 1 ? 'them' : 'it'} first (service update --${kind}-rm ${cur.spec.name})`,
        );
      }
      tx.delete(kind, cur.id);
      removed = { removed: cur.id, name: cur.spec.name };
    });
    return removed;
  });
}

export function registerSecretRoutes<C>(r: Router<C>, d: SecretApiDeps): void {
  registerKind(r, d, 'secret');
  registerKind(r, d, 'config');
}
