// The disk check behind "no secret or key ever lands on a disk in plaintext": every regular file under a
// directory that contains one of the needles. Symlinks and special files are skipped (a FIFO would hang
// the read, a link could lead outside the directory); a file that vanishes between readdir and read (a
// WAL checkpoint, a pruned snapshot) is skipped too.
import { lstatSync, readdirSync, readFileSync, type Stats } from 'node:fs';
import { join } from 'node:path';

export function filesContaining(dir: string, needles: Buffer[]): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      let st: Stats;
      try {
        st = lstatSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) {
        let data: Buffer;
        try {
          data = readFileSync(p);
        } catch {
          continue;
        }
        if (needles.some((x) => data.includes(x))) out.push(p);
      }
    }
  };
  walk(dir);
  return out;
}
