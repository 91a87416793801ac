// Shared helpers of the stack tests: load corpus files from disk or compose text from an in-memory file
// map, and read the `# ERROR key: text` markers the error corpus carries on the lines it expects
// problems on.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCompose } from '../../stack/compose/load.ts';
import type { ComposeProject } from '../../stack/compose/types.ts';
import { memoryStackFiles, nodeStackFiles } from '../../stack/fs.ts';

export const CORPUS = join(dirname(fileURLToPath(import.meta.url)), 'corpus');

/** Loads corpus files (relative to the corpus directory, shown as given). */
export function loadCorpus(files: string[], env: Record<string, string | undefined> = {}, sub = ''): ComposeProject {
  return loadCompose({ files, cwd: join(CORPUS, sub), env, fs: nodeStackFiles });
}

/** Loads compose text from memory: `files` maps absolute paths to contents; the first `-c` is /app/<first>. */
export function loadMemory(files: Record<string, string>, names: string[], env: Record<string, string | undefined> = {}): ComposeProject {
  return loadCompose({ files: names, cwd: '/app', env, fs: memoryStackFiles(files) });
}

export interface Marker {
  line: number;
  text: string;
}

/** `# ERROR services.web.x: message` markers of a corpus file, with their line numbers. */
export function errorMarkers(file: string): Marker[] {
  const out: Marker[] = [];
  readFileSync(join(CORPUS, file), 'utf8')
    .split('\n')
    .forEach((l, i) => {
      const at = l.indexOf('# ERROR ');
      if (at >= 0) out.push({ line: i + 1, text: l.slice(at + 8).trim() });
    });
  return out;
}
