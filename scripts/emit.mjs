// Writes esbuild's output files (`write: false`) into dist/ so that a process reading dist/ at any
// moment never sees a half-written file or a chunk graph that does not hold together. Plain JavaScript,
// like scripts/build.mjs, which runs before anything is compiled.
//
// Why: daemons start from dist/ while a rebuild may be running (bin/shoal and lab/compiled.ts rebuild a
// stale checkout before they run; a test dates the stamp back on purpose). esbuild writes its outputs in
// place, truncating first, so a daemon importing a chunk in that window read a prefix of it and failed
// to link ("does not provide an export named …"). Here every file goes to a temporary name in the same
// directory and is renamed over the old one, which readers see whole or not at all. Chunk names carry
// a content hash, so a file that already exists with the same bytes is left alone (the common case of
// a rebuild: nothing changed), and files that others import (chunks, maps) are in place before the
// entries that import them.
import { mkdirSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Rewrites every non-ASCII character as a \uXXXX escape: esbuild leaves some in regular expressions
 * (`µs`) and comments, and as escapes they mean the same in a regex, a string or a template. ASCII
 * source is held by V8 as a one-byte string (docs/design/build.md, "Memory").
 */
export function asciiOnly(text) {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the range is every non-ASCII character
  return text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Replaces `path` by `data` atomically (temporary file + rename). When it already holds `data` only its
 * mtime is renewed: scripts/build.mjs deletes an old build's chunks a week after they were last built.
 * Returns whether the content changed.
 */
export function writeAtomic(path, data) {
  const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  let old;
  try {
    old = readFileSync(path);
  } catch {
    old = undefined;
  }
  if (old?.equals(bytes)) {
    const now = new Date();
    utimesSync(path, now, now);
    return false;
  }
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  return true;
}

/**
 * Writes `outputFiles` (esbuild's, from a `write: false` build): JavaScript made ASCII when `ascii`,
 * every file atomically, the files named in `last` (absolute paths: the entry points) after all others.
 * Returns how many files changed on disk.
 */
export function emitOutputs(outputFiles, { ascii = false, last = [] } = {}) {
  const late = new Set(last);
  const ordered = [...outputFiles.filter((f) => !late.has(f.path)), ...outputFiles.filter((f) => late.has(f.path))];
  let changed = 0;
  for (const f of ordered) {
    const js = /\.c?js$/.test(f.path);
    if (writeAtomic(f.path, ascii && js ? asciiOnly(f.text) : f.contents)) changed++;
  }
  return changed;
}
