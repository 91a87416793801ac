// Resolving a task's USER (`app`, `1000`, `app:staff`) against the image's /etc/passwd and /etc/group.
// The image is untrusted: its /etc/passwd may be a symlink to /dev/zero or to a host file, a FIFO (the
// unpacker keeps FIFOs), or huge. Read on the host by the daemon, any of those would hang or exhaust it
// (security review finding 7). So the file is found inside the rootfs (symlinks and ".." resolved as if
// the rootfs were "/"), opened without following a last symlink and without blocking, must be a regular
// file, and is read up to a size cap.
import { closeSync, constants, fstatSync, lstatSync, openSync, readlinkSync, readSync, type Stats } from 'node:fs';
import { join } from 'node:path';

/** The image's user database could not be used; the message says why (the task is rejected with it). */
export class UserLookupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserLookupError';
  }
}

/** Larger than any real /etc/passwd; a bigger one is refused rather than read. */
export const USER_DB_MAX_BYTES = 1024 * 1024;
const MAX_LINKS = 40;

/**
 * `path` (absolute, as seen in the container) resolved inside `root`: the host path of its last component,
 * whose symlinks are left to the caller (opened with O_NOFOLLOW), or undefined when something on the way
 * does not exist.
 */
export function resolveInRoot(root: string, path: string): string | undefined {
  const done: string[] = [];
  const todo = path.split('/').filter((c) => c !== '' && c !== '.');
  let links = 0;
  while (todo.length > 0) {
    const c = todo.shift()!;
    if (c === '..') {
      done.pop(); // at the root, ".." is the root
      continue;
    }
    const host = join(root, ...done, c);
    if (todo.length === 0) return host; // the last component: not followed here
    let st: Stats;
    try {
      st = lstatSync(host);
    } catch {
      return undefined;
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) throw new UserLookupError(`${path}: too many symbolic links in the image`);
      const target = readlinkSync(host);
      if (target.startsWith('/')) done.length = 0;
      todo.unshift(...target.split('/').filter((x) => x !== '' && x !== '.'));
      continue;
    }
    if (!st.isDirectory()) return undefined;
    done.push(c);
  }
  return undefined;
}

/** The file's text, or undefined when it does not exist; throws UserLookupError when it is unusable. */
export function readImageFile(root: string, path: string, maxBytes = USER_DB_MAX_BYTES): string | undefined {
  const host = resolveInRoot(root, path);
  if (host === undefined) return undefined;
  let fd: number;
  try {
    fd = openSync(host, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    if (code === 'ELOOP') throw new UserLookupError(`the image's ${path} is a symbolic link (it must be a regular file)`);
    throw new UserLookupError(`the image's ${path} cannot be opened: ${code ?? (e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new UserLookupError(`the image's ${path} is not a regular file`);
    if (st.size > maxBytes) throw new UserLookupError(`the image's ${path} is ${st.size} bytes, over the ${maxBytes}-byte limit`);
    const buf = Buffer.alloc(Math.min(maxBytes, st.size) + 1);
    let n = 0;
    while (n < buf.length) {
      const r = readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
    }
    if (n > maxBytes) throw new UserLookupError(`the image's ${path} is over the ${maxBytes}-byte limit`);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** "uid[:gid]", "name[:group]" → numeric ids, looked up in the image's files; undefined without a user. */
export function resolveUser(rootfs: string, user: string | undefined): { uid: number; gid: number } | undefined {
  if (!user) return undefined;
  const [u, g] = user.split(':');
  const lookup = (file: 'passwd' | 'group', name: string): string[] | undefined =>
    readImageFile(rootfs, `/etc/${file}`)
      ?.split('\n')
      .map((l) => l.split(':'))
      .find((f) => f[0] === name);
  const num = (s: string | undefined, what: string): number => {
    const n = Number(s);
    if (s === undefined || !/^\d+$/.test(s) || n > 0xfffffffe) throw new UserLookupError(`${what} in the image is not a valid id (${JSON.stringify(s)})`);
    return n;
  };
  let uid: number;
  let gid: number;
  if (/^\d+$/.test(u!)) {
    uid = num(u, 'uid');
    gid = uid;
  } else {
    const pw = lookup('passwd', u!);
    if (!pw) throw new UserLookupError(`user ${u} not found in the image's /etc/passwd`);
    uid = num(pw[2], `user ${u}'s uid`);
    gid = num(pw[3], `user ${u}'s gid`);
  }
  if (g !== undefined) {
    if (/^\d+$/.test(g)) gid = num(g, 'gid');
    else {
      const gr = lookup('group', g);
      if (!gr) throw new UserLookupError(`group ${g} not found in the image's /etc/group`);
      gid = num(gr[2], `group ${g}'s gid`);
    }
  }
  return { uid, gid };
}
