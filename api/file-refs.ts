// A task template's secrets and configs (Docker's ContainerSpec.Secrets / Configs): the shape checks
// that need no store, with Docker's defaults filled in. Which secret or config a reference names is
// resolved against the store when the service is written (api/secrets.ts resolveFileRefs), so a
// reference to something that does not exist is refused there, atomically with the write.
//
// Where files appear in the container:
//   * a secret at /run/secrets/<target.name> (target.name defaults to the secret's name; an absolute
//     target must lie under /run/secrets);
//   * a config at target.name, an absolute path (default /<config name>), not under /proc, /sys or
//     /dev, which the shim mounts afresh after pivot_root (a file placed there would be hidden).
// Every target is unique within the task, secrets and configs together.
import { posix } from 'node:path';
import type { ConfigReference, FileTarget, SecretReference } from './objects.ts';

export const SECRETS_DIR = '/run/secrets';
export const DEFAULT_FILE_MODE = 0o444;
/** References one task may carry, per kind (Docker sets no limit; this keeps a spec bounded). */
export const MAX_FILE_REFS = 100;
const RESERVED = ['/proc', '/sys', '/dev'];

/** A bad reference; spec.ts turns it into its SpecError (400 naming the field). */
export class FileRefError extends Error {
  readonly code = 'EINVALIDSPEC';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = 'FileRefError';
  }
}

function fail(field: string, message: string): never {
  throw new FileRefError(field, message);
}

function got(v: unknown): string {
  return v === undefined
    ? 'nothing'
    : typeof v === 'string'
      ? JSON.stringify(v)
      : Array.isArray(v)
        ? 'an array'
        : v === null
          ? 'null'
          : typeof v === 'object'
            ? 'an object'
            : String(v);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function only(o: Record<string, unknown>, keys: readonly string[], field: string): void {
  for (const k of Object.keys(o))
    if (o[k] !== undefined && !keys.includes(k)) fail(`${field}.${k}`, `${field}.${k}: unknown field (known fields: ${keys.join(', ')})`);
}

/** The path a reference's file has in the container. */
export function targetPath(kind: 'secret' | 'config', name: string): string {
  return kind === 'secret' ? posix.join(SECRETS_DIR, name) : name;
}

function checkTargetName(kind: 'secret' | 'config', name: string, field: string): string {
  if (name.includes('\0') || name.includes(',')) fail(field, `${field}: NUL characters and commas are not supported (got ${got(name)})`);
  if (name.split('/').includes('..')) fail(field, `${field} must not contain '..' (got ${got(name)})`);
  if (kind === 'secret') {
    let n = name;
    if (n.startsWith('/')) {
      const norm = posix.normalize(n);
      if (!norm.startsWith(`${SECRETS_DIR}/`)) fail(field, `${field}: a secret's absolute target must lie under ${SECRETS_DIR}/ (got ${got(name)})`);
      n = norm.slice(SECRETS_DIR.length + 1);
    }
    n = posix.normalize(n).replace(/\/+$/, '');
    if (n === '' || n === '.') fail(field, `${field}: the target file name is empty`);
    return n;
  }
  if (!name.startsWith('/')) fail(field, `${field}: a config's target must be an absolute path (got ${got(name)})`);
  const t = posix.normalize(name).replace(/\/+$/, '');
  if (t === '') fail(field, `${field}: / is not a file`);
  for (const r of RESERVED)
    if (t === r || t.startsWith(`${r}/`)) fail(field, `${field}: ${t} lies in ${r}, which the container gets afresh; choose another path`);
  return t;
}

function idString(v: unknown, field: string): string {
  if (v === undefined || v === null || v === '') return '0';
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return String(v);
  if (typeof v !== 'string' || !/^\d{1,10}$/.test(v) || Number(v) > 0xfffffffe)
    fail(field, `${field} must be a numeric id from 0 to 4294967294 (got ${got(v)})`);
  return v;
}

function validateOne(kind: 'secret' | 'config', raw: unknown, field: string): SecretReference | ConfigReference {
  const idKey = kind === 'secret' ? 'secretId' : 'configId';
  const nameKey = kind === 'secret' ? 'secretName' : 'configName';
  if (!isRecord(raw)) fail(field, `${field} must be an object (got ${got(raw)})`);
  only(raw, [idKey, nameKey, 'target'], field);
  const id = raw[idKey] ?? '';
  const name = raw[nameKey] ?? '';
  if (typeof id !== 'string') fail(`${field}.${idKey}`, `${field}.${idKey} must be a string (got ${got(id)})`);
  if (typeof name !== 'string') fail(`${field}.${nameKey}`, `${field}.${nameKey} must be a string (got ${got(name)})`);
  if (id === '' && name === '') fail(field, `${field} names no ${kind} (give ${nameKey} or ${idKey})`);
  const t = raw['target'] ?? {};
  if (!isRecord(t)) fail(`${field}.target`, `${field}.target must be an object (got ${got(t)})`);
  only(t, ['name', 'uid', 'gid', 'mode'], `${field}.target`);
  const tn = t['name'] ?? '';
  if (typeof tn !== 'string') fail(`${field}.target.name`, `${field}.target.name must be a string (got ${got(tn)})`);
  // Without a name the default needs the object's name; with only an id it is filled in at resolution.
  const defaultName = name === '' ? '' : kind === 'secret' ? name : `/${name}`;
  const targetName =
    tn !== '' ? checkTargetName(kind, tn, `${field}.target.name`) : defaultName === '' ? '' : checkTargetName(kind, defaultName, `${field}.${nameKey}`);
  const mode = t['mode'] ?? DEFAULT_FILE_MODE;
  if (typeof mode !== 'number' || !Number.isSafeInteger(mode) || mode < 0 || mode > 0o7777)
    fail(`${field}.target.mode`, `${field}.target.mode must be permission bits from 0 to 0o7777 (got ${got(mode)})`);
  const target: FileTarget = { name: targetName, uid: idString(t['uid'], `${field}.target.uid`), gid: idString(t['gid'], `${field}.target.gid`), mode };
  return kind === 'secret' ? { secretId: id, secretName: name, target } : { configId: id, configName: name, target };
}

/** Checks `task.secrets` or `task.configs`; returns them with defaults filled in. */
export function validateFileRefs(kind: 'secret', raw: unknown): SecretReference[];
export function validateFileRefs(kind: 'config', raw: unknown): ConfigReference[];
export function validateFileRefs(kind: 'secret' | 'config', raw: unknown): (SecretReference | ConfigReference)[] {
  const field = `task.${kind}s`;
  if (!Array.isArray(raw)) fail(field, `${field} must be an array (got ${got(raw)})`);
  if (raw.length > MAX_FILE_REFS) fail(field, `${field}: at most ${MAX_FILE_REFS} ${kind}s per task (got ${raw.length})`);
  return raw.map((r, i) => validateOne(kind, r, `${field}[${i}]`));
}

/** Targets must be unique within a task, secrets and configs together. Names still empty are skipped. */
export function checkUniqueTargets(secrets: readonly SecretReference[], configs: readonly ConfigReference[]): void {
  const seen = new Map<string, string>();
  const add = (path: string, field: string) => {
    const prev = seen.get(path);
    if (prev !== undefined) fail(field, `${field}: target ${path} is used twice (also by ${prev})`);
    seen.set(path, field);
  };
  secrets.forEach((s, i) => {
    if (s.target.name !== '') add(targetPath('secret', s.target.name), `task.secrets[${i}].target.name`);
  });
  configs.forEach((c, i) => {
    if (c.target.name !== '') add(targetPath('config', c.target.name), `task.configs[${i}].target.name`);
  });
}
