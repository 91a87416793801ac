// `shoal image load|pull|ls|rm|prune` and `shoal volume ls|rm|prune`: per-node state, so these talk to
// the local daemon's unix socket (--state-dir), not to the managers. Flags are declared in cli/commands.ts.
import { resolve } from 'node:path';
import type { Invocation } from './command.ts';
import { CliError, DEFAULT_STATE_DIR, localCall } from '../client/context.ts';
import { renderListing } from './format.ts';

const stateDir = (i: Invocation) => resolve(i.value('state-dir') ?? DEFAULT_STATE_DIR);

interface ImageSummary {
  name?: string;
  names?: string[];
  digest?: string;
  id?: string;
  layers?: unknown[];
  chainIds?: unknown[];
}

export async function imageLoad(i: Invocation): Promise<number> {
  if (i.positionals.length !== 1) throw new CliError('image load needs one archive (docker save or OCI layout)');
  const tag = i.value('tag');
  const r = await localCall<{ name: string; digest: string }>(stateDir(i), 'POST', '/images/load', {
    path: resolve(i.positionals[0]!),
    ...(tag ? { tag } : {}),
  });
  console.log(`Loaded image: ${r.name} (${String(r.digest).slice(0, 19)})`);
  return 0;
}

export async function imageLs(i: Invocation): Promise<number> {
  const list = await localCall<ImageSummary[]>(stateDir(i), 'GET', '/images');
  const rows = list.map((m) => {
    const id = String(m.digest ?? m.id ?? '');
    return {
      id,
      object: m,
      cells: [String(m.name ?? m.names?.[0] ?? '<none>'), id.replace('sha256:', '').slice(0, 12), String(m.layers?.length ?? m.chainIds?.length ?? '')],
    };
  });
  console.log(renderListing({ headers: ['NAME', 'IMAGE ID', 'LAYERS'], rows }, i.output));
  return 0;
}

export async function imagePull(i: Invocation): Promise<number> {
  if (i.positionals.length !== 1) throw new CliError('image pull needs one image reference');
  const user = process.env.SHOAL_REGISTRY_USER;
  const password = process.env.SHOAL_REGISTRY_PASSWORD;
  const r = await localCall<{ name: string; digest: string }>(
    stateDir(i),
    'POST',
    '/images/pull',
    { ref: i.positionals[0], ...(user && password ? { username: user, password } : {}) },
    600_000,
  );
  console.log(`Pulled image: ${r.name} (${String(r.digest).slice(0, 19)})`);
  return 0;
}

export async function imageRm(i: Invocation): Promise<number> {
  if (i.positionals.length === 0) throw new CliError('image rm needs at least one image');
  const r = await localCall<{ removed: string[] }>(stateDir(i), 'POST', '/images/rm', { refs: i.positionals });
  for (const x of r.removed) console.log(`Untagged: ${x}`);
  return 0;
}

export async function imagePrune(i: Invocation): Promise<number> {
  const r = await localCall<{ removed: string[] }>(stateDir(i), 'POST', '/images/prune', {});
  for (const x of r.removed) console.log(`Deleted: ${x}`);
  console.log(`${r.removed.length} image(s) removed; layers no image uses were garbage-collected`);
  return 0;
}

export async function volumeLs(i: Invocation): Promise<number> {
  const list = await localCall<{ name: string; users?: string[]; anonymous?: boolean }[]>(stateDir(i), 'GET', '/volumes');
  const rows = list.map((v) => ({ id: v.name, object: v, cells: ['local', v.name, (v.users ?? []).map((u) => u.slice(0, 12)).join(',')] }));
  console.log(renderListing({ headers: ['DRIVER', 'VOLUME NAME', 'IN USE BY'], rows }, i.output));
  return 0;
}

export async function volumeRm(i: Invocation): Promise<number> {
  if (i.positionals.length === 0) throw new CliError('volume rm needs at least one volume');
  await localCall(stateDir(i), 'POST', '/volumes/rm', { names: i.positionals });
  for (const n of i.positionals) console.log(n);
  return 0;
}

export async function volumePrune(i: Invocation): Promise<number> {
  const r = await localCall<{ removed: string[] }>(stateDir(i), 'POST', '/volumes/prune', {});
  for (const n of r.removed) console.log(`Deleted: ${n}`);
  return 0;
}
