// The real file system for the stack loader (stack/compose/load.ts takes a StackFiles so that its logic
// stays free of I/O and its tests can use an in-memory map). Kept to the two calls the loader needs.
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { StackFiles } from './compose/load.ts';

export const nodeStackFiles: StackFiles = {
  exists: (p) => existsSync(p) && statSync(p).isFile(),
  readFile: (p) => readFileSync(p, 'utf8'),
};

/** An in-memory StackFiles over absolute paths → contents (for tests and for `-c -` from stdin). */
export function memoryStackFiles(files: Readonly<Record<string, string>>): StackFiles {
  return {
    exists: (p) => Object.hasOwn(files, p),
    readFile: (p) => {
      if (!Object.hasOwn(files, p)) throw new Error(`${p}: no such file`);
      return files[p]!;
    },
  };
}
