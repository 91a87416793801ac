// `shoal secret create|ls|inspect|rm` and `shoal config create|ls|inspect|rm`, as Docker spells them, and
// the parser of the service flags that reference them (`--secret NAME` or
// `--secret source=NAME,target=T,uid=U,gid=G,mode=0400`, same for --config). The managers validate
// everything again (manager/api/secrets.ts); a secret's data never comes back from them.
import { readFileSync } from 'node:fs';
import type { ConfigReference, FileTarget, SecretReference } from '../api/objects.ts';
import type { Invocation } from './command.ts';
import { CliError, control } from '../client/context.ts';
import { flagError } from './flags.ts';
import { humanAgo, renderInspect, renderListing, type Listing } from './format.ts';

export type FileKind = 'secret' | 'config';

/** Docker's limit on the data (the managers enforce it too). */
const MAX_DATA_BYTES = 500 * 1024;

interface FileObject {
  id: string;
  createdAt: string;
  updatedAt: string;
  spec: { name: string; labels: Record<string, string>; data?: string };
}

// ---------------------------------------------------------------------------------- service flags

/** A reference as a service flag gives it: by name; the managers fill in the id and defaults. */
export type SecretRefDraft = Pick<SecretReference, 'secretName'> & { target: Partial<FileTarget> };
export type ConfigRefDraft = Pick<ConfigReference, 'configName'> & { target: Partial<FileTarget> };

/** `NAME` or `source=NAME[,target=T][,uid=U][,gid=G][,mode=0444]` (Docker's --secret / --config). */
export function parseFileRef(kind: 'secret', s: string, flag: string): SecretRefDraft;
export function parseFileRef(kind: 'config', s: string, flag: string): ConfigRefDraft;
export function parseFileRef(kind: FileKind, s: string, flag: string): SecretRefDraft | ConfigRefDraft {
  let source: string | undefined;
  const target: Partial<FileTarget> = {};
  if (!s.includes('=')) source = s;
  else {
    for (const part of s.split(',')) {
      const i = part.indexOf('=');
      const k = (i < 0 ? part : part.slice(0, i)).trim().toLowerCase();
      const v = i < 0 ? '' : part.slice(i + 1).trim();
      if (v === '') throw flagError(flag, `${k}: a value is needed in ${JSON.stringify(s)}`);
      switch (k) {
        case 'source':
        case 'src':
          source = v;
          break;
        case 'target':
          target.name = v;
          break;
        case 'uid':
        case 'gid':
          if (!/^\d+$/.test(v)) throw flagError(flag, `${k} must be a numeric id (got ${JSON.stringify(v)})`);
          target[k] = v;
          break;
        case 'mode': {
          if (!/^[0-7]{1,4}$/.test(v)) throw flagError(flag, `mode must be octal permission bits such as 0444 (got ${JSON.stringify(v)})`);
          target.mode = parseInt(v, 8);
          break;
        }
        default:
          throw flagError(flag, `unknown option ${JSON.stringify(k)} (known: source, target, uid, gid, mode)`);
      }
    }
  }
  if (!source) throw flagError(flag, `the ${kind} to use is missing: give NAME or source=NAME`);
  return kind === 'secret' ? { secretName: source, target } : { configName: source, target };
}

/** The name a reference (from a flag or the current spec) uses. */
export function refName(r: { secretName?: string; configName?: string }): string {
  return r.secretName ?? r.configName ?? '';
}

// ---------------------------------------------------------------------------------------- commands

function readData(kind: FileKind, file: string): Buffer {
  let data: Buffer;
  try {
    data = file === '-' ? readFileSync(0) : readFileSync(file);
  } catch (e) {
    throw new CliError(`${kind} create: cannot read ${file === '-' ? 'standard input' : file}: ${(e as Error).message}`);
  }
  if (data.length === 0) throw new CliError(`${kind} create: the ${kind} data is empty`);
  if (data.length > MAX_DATA_BYTES) throw new CliError(`${kind} create: the data is ${data.length} bytes, over the limit of ${MAX_DATA_BYTES} bytes (500 KiB)`);
  return data;
}

function labelsOf(values: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const kv of values) {
    const i = kv.indexOf('=');
    const k = i < 0 ? kv : kv.slice(0, i);
    if (k === '') throw new CliError(`--label ${kv}: expected key=value`);
    labels[k] = i < 0 ? '' : kv.slice(i + 1);
  }
  return labels;
}

/** Docker's columns: ID NAME CREATED UPDATED. */
export function fileListing(objects: FileObject[], now: number): Listing {
  const sorted = [...objects].sort((a, b) => a.spec.name.localeCompare(b.spec.name));
  return {
    headers: ['ID', 'NAME', 'CREATED', 'UPDATED'],
    rows: sorted.map((o) => ({ id: o.id, object: o, cells: [o.id.slice(0, 12), o.spec.name, humanAgo(o.createdAt, now), humanAgo(o.updatedAt, now)] })),
  };
}

export const fileCreate =
  (kind: FileKind) =>
  async (i: Invocation): Promise<number> => {
    if (i.positionals.length !== 2) throw new CliError(`${kind} create needs NAME and FILE (or - for standard input)`);
    const [name, file] = i.positionals as [string, string];
    const data = readData(kind, file);
    const r = await control<{ id: string }>(i.context(), 'POST', `/v1/${kind}s`, { name, labels: labelsOf(i.values('label')), data: data.toString('base64') });
    data.fill(0);
    console.log(r.id);
    return 0;
  };

export const fileLs =
  (kind: FileKind) =>
  async (i: Invocation): Promise<number> => {
    if (i.positionals.length > 0) throw new CliError(`${kind} ls takes no arguments`);
    const objects = await control<FileObject[]>(i.context(), 'GET', `/v1/${kind}s`);
    console.log(renderListing(fileListing(objects, Date.now()), i.output));
    return 0;
  };

export const fileInspect =
  (kind: FileKind) =>
  async (i: Invocation): Promise<number> => {
    if (i.positionals.length === 0) throw new CliError(`${kind} inspect needs at least one ${kind} (name, id or id prefix)`);
    const ctx = i.context();
    const out: FileObject[] = [];
    for (const ref of i.positionals) out.push(await control<FileObject>(ctx, 'GET', `/v1/${kind}s/${encodeURIComponent(ref)}`));
    console.log(renderInspect(out, i.output.format));
    return 0;
  };

export const fileRm =
  (kind: FileKind) =>
  async (i: Invocation): Promise<number> => {
    if (i.positionals.length === 0) throw new CliError(`${kind} rm needs at least one ${kind}`);
    const ctx = i.context();
    const failed: string[] = [];
    for (const ref of i.positionals) {
      try {
        await control(ctx, 'DELETE', `/v1/${kind}s/${encodeURIComponent(ref)}`);
        console.log(ref);
      } catch (e) {
        if (!(e instanceof CliError)) throw e;
        console.error(`shoal: ${e.message}`);
        failed.push(ref);
      }
    }
    if (failed.length > 0) throw new CliError(`could not remove ${kind}${failed.length === 1 ? '' : 's'} ${failed.join(', ')}`);
    return 0;
  };
