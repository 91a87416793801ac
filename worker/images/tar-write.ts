// A minimal streaming ustar writer for what Shoal itself produces (image exports for cluster-internal
// distribution): regular files with short ASCII names, root-owned, fixed mtime, so the same image always
// exports to the same bytes.
import { createReadStream } from 'node:fs';
import * as fsp from 'node:fs/promises';

function octal(h: Buffer, off: number, len: number, v: number): void {
  h.write(v.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1');
}

/** A ustar header: root-owned, `flag` '0' file, '2' symlink, '5' directory. Names up to 100 bytes. */
export function ustarHeader(name: string, flag: string, size: number, opts: { mode?: number; mtime?: number; linkname?: string } = {}): Buffer {
  const linkname = opts.linkname ?? '';
  if (Buffer.byteLength(name) > 100 || Buffer.byteLength(linkname) > 100) throw new Error(`tar: name too long: ${name}`);
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  octal(h, 100, 8, opts.mode ?? (flag === '5' ? 0o755 : 0o644));
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  octal(h, 124, 12, size);
  octal(h, 136, 12, opts.mtime ?? 0);
  h.write(flag, 156, 1, 'latin1');
  h.write(linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 6, 'latin1');
  h.write('00', 263, 2, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return h;
}

function fileHeader(name: string, size: number): Buffer {
  if (!/^[\x21-\x7e]{1,100}$/.test(name)) throw new Error(`tar: unsupported entry name ${JSON.stringify(name)}`);
  return ustarHeader(name, '0', size);
}

export class TarFileWriter {
  private fh: fsp.FileHandle | null = null;
  private bytes = 0;

  constructor(private readonly dest: string) {}

  private async out(b: Buffer): Promise<void> {
    this.fh ??= await fsp.open(this.dest, 'w', 0o600);
    await this.fh.write(b);
    this.bytes += b.length;
  }

  private async pad(size: number): Promise<void> {
    const r = size % 512;
    if (r) await this.out(Buffer.alloc(512 - r));
  }

  async add(name: string, data: Buffer): Promise<void> {
    await this.out(fileHeader(name, data.length));
    await this.out(data);
    await this.pad(data.length);
  }

  /** Copies a file into the archive; its size must not change while being copied. */
  async addFile(name: string, src: string): Promise<void> {
    const { size } = await fsp.stat(src);
    await this.out(fileHeader(name, size));
    let n = 0;
    for await (const c of createReadStream(src)) {
      n += (c as Buffer).length;
      await this.out(c as Buffer);
    }
    if (n !== size) throw new Error(`tar: ${src} changed size while being archived`);
    await this.pad(size);
  }

  /** Writes the end-of-archive marker; returns the archive's size. */
  async close(): Promise<number> {
    await this.out(Buffer.alloc(1024));
    await this.fh!.sync();
    await this.fh!.close();
    this.fh = null;
    return this.bytes;
  }

  async abort(): Promise<void> {
    await this.fh?.close().catch(() => {});
    this.fh = null;
    await fsp.rm(this.dest, { force: true });
  }
}
