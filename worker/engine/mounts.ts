// From a task's mounts (TaskTemplate.mounts) to the shim's: validation, bind sources checked on this
// node, volumes resolved to their directories, and an order in which parents are mounted before the
// mounts inside them.
import { existsSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import type { Mount } from '../../api/objects.ts';
import type { ShimMount } from './shim.ts';
import { VolumeStore } from './volumes.ts';

/** The shim mounts fresh /proc, /dev and /sys after pivot_root: anything mounted below them would be hidden. */
const RESERVED = ['/proc', '/dev', '/sys'];

export interface VolumeUse {
  name: string;
  anonymous: boolean;
}

/** The volumes a task's mounts use, anonymous ones under their stable per-task names. */
export function volumeUses(taskId: string, mounts: readonly Mount[] | undefined): VolumeUse[] {
  return (mounts ?? []).flatMap((m, i) =>
    m.type !== 'volume' ? [] : [m.source ? { name: m.source, anonymous: false } : { name: VolumeStore.anonymousName(taskId, i), anonymous: true }],
  );
}

/** An absolute, normalized container path; throws on relative paths, '..' components and the like. */
export function checkTarget(target: string): string {
  if (!target.startsWith('/')) throw new Error(`mount target ${JSON.stringify(target)} must be an absolute path`);
  if (target.split('/').includes('..')) throw new Error(`mount target ${JSON.stringify(target)} must not contain '..'`);
  if (target.includes(',')) throw new Error(`mount target ${JSON.stringify(target)}: commas are not supported`);
  const t = posix.normalize(target).replace(/\/+$/, '');
  if (t === '') throw new Error("mount target / would replace the container's root");
  for (const r of RESERVED) if (t === r || t.startsWith(`${r}/`)) throw new Error(`mount target ${t}: mounts in ${r} are not supported`);
  return t;
}

/**
 * Validates a task's mounts and translates them for the shim, registering the task as a user of its
 * volumes (created on first use). Every error is a reason the task cannot run on this node; nothing is
 * acquired unless all mounts are valid.
 */
export function planMounts(taskId: string, mounts: readonly Mount[] | undefined, o: { volumes: VolumeStore; nodeName: string }): ShimMount[] {
  const list = mounts ?? [];
  const targets = new Set<string>();
  const checked = list.map((m) => {
    const target = checkTarget(m.target);
    if (targets.has(target)) throw new Error(`duplicate mount target ${target}`);
    targets.add(target);
    if (m.tmpfsSizeBytes !== undefined && m.type !== 'tmpfs') throw new Error(`mount on ${target}: tmpfsSizeBytes is for tmpfs mounts only`);
    if (m.type === 'bind') {
      if (!m.source?.startsWith('/')) throw new Error(`bind mount on ${target}: the source must be an absolute path on the node`);
      if (m.source.includes(',')) throw new Error(`bind source ${m.source}: commas are not supported`);
      if (!existsSync(m.source)) throw new Error(`bind source ${m.source} missing on node ${o.nodeName}`);
    } else if (m.type === 'volume') {
      if (m.source !== undefined && m.source !== '' && !VolumeStore.validName(m.source)) {
        throw new Error(`invalid volume name ${JSON.stringify(m.source)}: [a-zA-Z0-9][a-zA-Z0-9_.-]*`);
      }
    } else if (m.type === 'tmpfs') {
      if (m.source) throw new Error(`tmpfs mount on ${target} takes no source`);
      if (m.tmpfsSizeBytes !== undefined && (!Number.isSafeInteger(m.tmpfsSizeBytes) || m.tmpfsSizeBytes <= 0)) {
        throw new Error(`tmpfs mount on ${target}: size must be a positive number of bytes`);
      }
    } else {
      throw new Error(`mount on ${target}: unknown type ${JSON.stringify((m as Mount).type)}`);
    }
    return { ...m, target };
  });
  const shim = checked.map((m, i): ShimMount => {
    const ro = m.readOnly ? { readOnly: true } : {};
    if (m.type === 'bind') return { type: 'bind', source: m.source!, target: m.target, ...ro };
    if (m.type === 'tmpfs') return { type: 'tmpfs', target: m.target, ...ro, ...(m.tmpfsSizeBytes ? { sizeBytes: m.tmpfsSizeBytes } : {}) };
    const name = m.source ? m.source : VolumeStore.anonymousName(taskId, i);
    return { type: 'bind', source: o.volumes.acquire(name, taskId, { anonymous: !m.source }), target: m.target, ...ro };
  });
  return sortByDepth(shim);
}

/** Stable order with fewer path components first, so /data is mounted before /data/cache. */
export function sortByDepth(mounts: ShimMount[]): ShimMount[] {
  const depth = (m: ShimMount) => m.target.split('/').length;
  return [...mounts].sort((a, b) => depth(a) - depth(b));
}

/**
 * True when `path` is a mount point in this process's mount namespace (a rootfs or tmpfs a previous agent
 * mounted and did not unmount). mountinfo escapes space, tab, newline and backslash as \ooo octal.
 */
export function isMountPoint(path: string): boolean {
  const unescapeOctal = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => unescapeOctal(line.split(' ')[4] ?? '') === path);
}
