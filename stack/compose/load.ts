// Loading a stack's compose files: read → parse YAML (positions kept) → interpolate each file → merge
// the files in order → validate → check that every file the stack refers to exists. The result is a
// ComposeProject (types.ts) and the warnings to print, or a ComposeError listing every problem as
// file:line:key. Nothing here touches the disk directly: files come through the injected StackFiles, so
// tests run on an in-memory map as well as on real files (stack/fs.ts is the real adapter).
import { posix as path } from 'node:path';
import { ComposeError, ComposeFileError, Problems, type Problem } from './errors.ts';
import { interpolateTree, mergeEnvironments, parseEnvFile } from './interpolate.ts';
import { mergeTrees } from './merge.ts';
import { readProject } from './schema.ts';
import { parseYamlTree, type PNode } from './tree.ts';
import type { ComposeProject } from './types.ts';

/** The only file access the loader needs. Paths are absolute. */
export interface StackFiles {
  exists(absPath: string): boolean;
  /** The file's text; may throw (the loader reports it as a ComposeFileError). */
  readFile(absPath: string): string;
}

export interface LoadOptions {
  /** The `-c` files, as the user gave them (relative ones resolve against `cwd`); later files override earlier ones. */
  files: readonly string[];
  /** Absolute directory relative file names resolve against. */
  cwd: string;
  /** The environment of the deploy (usually process.env); wins over the `.env` file. */
  env: Readonly<Record<string, string | undefined>>;
  fs: StackFiles;
}

/** A compose file larger than this is refused (a stack file is a few KiB; this bounds memory). */
export const MAX_COMPOSE_BYTES = 4 * 1024 * 1024;

function read(fs: StackFiles, abs: string, shown: string): string | undefined {
  if (!fs.exists(abs)) return undefined;
  let text: string;
  try {
    text = fs.readFile(abs);
  } catch (e) {
    throw new ComposeFileError(shown, `${shown}: cannot read: ${(e as Error).message}`);
  }
  if (text.length > MAX_COMPOSE_BYTES) throw new ComposeFileError(shown, `${shown}: larger than ${MAX_COMPOSE_BYTES} bytes`);
  return text;
}

/** Problems in reading order: by file (as given, others after), then line. */
function sortProblems(list: readonly Problem[], files: readonly string[]): Problem[] {
  const rank = (f: string) => {
    const i = files.indexOf(f);
    return i < 0 ? files.length : i;
  };
  return [...list].sort((a, b) => rank(a.pos.file) - rank(b.pos.file) || a.pos.line - b.pos.line);
}

/** Loads, merges and validates the files. Throws ComposeError (problems) or ComposeFileError (I/O). */
export function loadCompose(opts: LoadOptions): ComposeProject {
  if (opts.files.length === 0) throw new ComposeFileError('', 'no compose file given (use -c FILE)');
  const problems = new Problems();
  const abs = opts.files.map((f) => path.resolve(opts.cwd, f));
  const workingDir = path.dirname(abs[0]!);
  const warnings: string[] = [];
  const warn = (m: string) => {
    if (!warnings.includes(m)) warnings.push(m);
  };

  // The environment: the deploy's own, over the .env beside the first file.
  let dotEnv: Record<string, string> = {};
  const envPath = path.join(workingDir, '.env');
  const envText = read(opts.fs, envPath, envPath);
  if (envText !== undefined) {
    dotEnv = {};
    for (const l of parseEnvFile(envText, envPath, problems)) if (l.value !== undefined) dotEnv[l.key] = l.value;
  }
  const env = mergeEnvironments(opts.env, dotEnv);
  const lookup = (name: string): string | undefined => (Object.hasOwn(env, name) ? env[name] : undefined);

  let merged: PNode | null = null;
  for (let i = 0; i < opts.files.length; i++) {
    const shown = opts.files[i]!;
    const text = read(opts.fs, abs[i]!, shown);
    if (text === undefined) throw new ComposeFileError(shown, `${shown}: no such file`);
    const tree = parseYamlTree(text, shown, problems);
    if (!tree) continue;
    if (tree.kind !== 'map') {
      problems.add(tree.pos, '', 'a compose file must be a mapping (services:, networks: …)');
      continue;
    }
    interpolateTree(tree, '', lookup, problems, warn);
    merged = merged === null ? tree : mergeTrees(merged, tree);
  }
  if (problems.any) throw new ComposeError(sortProblems(problems.list, opts.files));
  if (merged === null) throw new ComposeError(problems.list);
  const project = readProject(merged, {
    workingDir,
    lookup,
    readFile: (p) => read(opts.fs, p, p),
    problems,
  });
  // Files the stack will read at deploy time: missing ones are problems now, before anything is created.
  for (const o of [...project.secrets, ...project.configs]) {
    if (o.file !== undefined && !opts.fs.exists(o.file)) {
      const what = project.secrets.includes(o) ? 'secrets' : 'configs';
      problems.add(o.filePos ?? o.pos, `${what}.${o.key}.file`, `file ${o.file} not found`);
    }
  }
  if (problems.any) throw new ComposeError(sortProblems(problems.list, opts.files));
  project.warnings = [...warnings, ...project.warnings];
  return project;
}
