// A strict tar reader: ustar, pax extended headers ('x' per entry, 'g' global) and GNU long names ('L', 'K').
// It reads from a Buffer or from any async iterable of Buffers (a stream) and yields one entry at a time.
// Every header checksum is verified; an archive that ends inside a header or an entry's data raises
// "tar: truncated entry <path> at offset <n>". See docs/design/images.md.

export type TarEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'chardev' | 'blockdev' | 'fifo' | 'other';

export interface TarEntry {
  path: string;
  type: TarEntryType;
  /** The raw type flag, e.g. '0', '5', 'S'. */
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch. */
  mtime: number;
  size: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Byte offset of this entry's header in the (uncompressed) archive. */
  offset: number;
  /** The entry's contents when reading with `buffer: true` (the default); null otherwise. */
  data: Buffer | null;
  /**
   * The entry's contents as a stream of chunks (only with `buffer: false`). Consume it before asking the
   * reader for the next entry; what is not consumed is skipped.
   */
  body(): AsyncIterable<Buffer>;
}

export interface TarReadOptions {
  /** Read each entry's contents into `data` (default true). With false, use `body()`. */
  buffer?: boolean;
  /** Refuse any entry (or pax/long-name header) whose data is larger than this (default: no limit). */
  maxEntrySize?: number;
  /** After the end-of-archive marker, read the rest of the input (e.g. so a hash over it is complete). */
  drain?: boolean;
}

export class TarError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TarError';
  }
}

const BLOCK = 512;
const MAX_META = 1 << 20; // pax and GNU long-name records are small; refuse huge ones

/** Pulls exact byte counts out of a chunked source. */
class ByteSource {
  private chunks: Buffer[] = [];
  private have = 0;
  private done = false;
  offset = 0;
  private readonly it: AsyncIterator<Buffer> | null;

  constructor(src: Buffer | AsyncIterable<Buffer | Uint8Array | string>) {
    if (Buffer.isBuffer(src)) {
      this.chunks = [src];
      this.have = src.length;
      this.done = true;
      this.it = null;
    } else {
      this.it = (src as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    }
  }

  private async fill(n: number): Promise<void> {
    while (this.have < n && !this.done && this.it) {
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        break;
      }
      const c = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array);
      if (c.length) {
        this.chunks.push(c);
        this.have += c.length;
      }
    }
  }

  /** Up to n bytes (fewer only at end of input), at most `max` bytes per returned chunk. */
  async take(n: number): Promise<Buffer> {
    await this.fill(n);
    const want = Math.min(n, this.have);
    const out: Buffer[] = [];
    let got = 0;
    while (got < want) {
      const c = this.chunks[0]!;
      const need = want - got;
      if (c.length <= need) {
        out.push(c);
        got += c.length;
        this.chunks.shift();
      } else {
        out.push(c.subarray(0, need));
        this.chunks[0] = c.subarray(need);
        got += need;
      }
    }
    this.have -= want;
    this.offset += want;
    return out.length === 1 ? out[0]! : Buffer.concat(out, want);
  }

  /** The next chunk of at most n bytes (empty only at end of input). */
  async some(n: number): Promise<Buffer> {
    if (this.have === 0) await this.fill(1);
    if (this.have === 0) return Buffer.alloc(0);
    const c = this.chunks[0]!;
    return this.take(Math.min(n, c.length));
  }

  async drain(): Promise<void> {
    this.chunks = [];
    this.have = 0;
    while (!this.done && this.it) {
      const r = await this.it.next();
      if (r.done) this.done = true;
    }
  }

  /** Stops reading the source early (lets it release files and streams). */
  async close(): Promise<void> {
    if (!this.done && this.it?.return) {
      this.done = true;
      await this.it.return(undefined).catch(() => undefined);
    }
  }
}

function cstr(b: Buffer, start: number, len: number): string {
  const s = b.subarray(start, start + len);
  const z = s.indexOf(0);
  return (z >= 0 ? s.subarray(0, z) : s).toString('utf8');
}

function num(b: Buffer, start: number, len: number, field: string, at: number): number {
  const s = b.subarray(start, start + len);
  if (s.length > 0 && (s[0]! & 0x80) !== 0) {
    // GNU base-256: big-endian two's complement with the top bit as the marker.
    if (s[0] === 0xff) throw new TarError(`tar: negative ${field} in header at offset ${at}`);
    let v = s[0]! & 0x7f;
    for (let i = 1; i < s.length; i++) v = v * 256 + s[i]!;
    if (!Number.isSafeInteger(v)) throw new TarError(`tar: ${field} too large in header at offset ${at}`);
    return v;
  }
  const t = s.toString('latin1').replace(/\0.*$/s, '').trim();
  if (t === '') return 0;
  if (!/^[0-7]+$/.test(t)) throw new TarError(`tar: invalid ${field} ${JSON.stringify(t)} in header at offset ${at}`);
  return parseInt(t, 8);
}

function checksumOk(h: Buffer): boolean {
  const stored = cstr(h, 148, 8).trim();
  if (!/^[0-7]+$/.test(stored)) return false;
  const want = parseInt(stored, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const v = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += v;
    signed += v > 127 ? v - 256 : v;
  }
  return want === unsigned || want === signed;
}

function parsePax(data: Buffer, at: number): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  while (i < data.length) {
    if (data[i] === 0) break;
    const sp = data.indexOf(0x20, i);
    if (sp < 0) throw new TarError(`tar: malformed pax header at offset ${at}`);
    const len = Number(data.subarray(i, sp).toString('latin1'));
    if (!Number.isInteger(len) || len <= sp - i || i + len > data.length) throw new TarError(`tar: malformed pax header at offset ${at}`);
    const rec = data.subarray(sp + 1, i + len);
    if (rec[rec.length - 1] !== 0x0a) throw new TarError(`tar: malformed pax record at offset ${at}`);
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw new TarError(`tar: malformed pax record at offset ${at}`);
    out.set(rec.subarray(0, eq).toString('utf8'), rec.subarray(eq + 1, rec.length - 1).toString('utf8'));
    i += len;
  }
  return out;
}

function typeOf(flag: string): TarEntryType {
  switch (flag) {
    case '0':
    case '\0':
    case '':
    case '7':
      return 'file';
    case '1':
      return 'hardlink';
    case '2':
      return 'symlink';
    case '3':
      return 'chardev';
    case '4':
      return 'blockdev';
    case '5':
      return 'dir';
    case '6':
      return 'fifo';
    default:
      return 'other';
  }
}

function paxNum(v: string | undefined, key: string, at: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new TarError(`tar: invalid pax ${key} ${JSON.stringify(v)} at offset ${at}`);
  return key === 'mtime' ? n : Math.floor(n);
}

/** Reads a tar archive and yields its entries in order (metadata headers are folded into the entries). */
export async function* readTar(src: Buffer | AsyncIterable<Buffer | Uint8Array | string>, opts: TarReadOptions = {}): AsyncGenerator<TarEntry> {
  const buffer = opts.buffer ?? true;
  const maxEntry = opts.maxEntrySize ?? Number.MAX_SAFE_INTEGER;
  const s = new ByteSource(src);
  const global = new Map<string, string>();
  let pax: Map<string, string> | null = null;
  let longName: string | null = null;
  let longLink: string | null = null;

  const readMeta = async (size: number, at: number, what: string): Promise<Buffer> => {
    if (size > MAX_META) throw new TarError(`tar: ${what} header of ${size} bytes at offset ${at} is too large`);
    const d = await s.take(size);
    if (d.length < size) throw new TarError(`tar: truncated entry ${what} at offset ${at}`);
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if ((await s.take(pad)).length < pad) throw new TarError(`tar: truncated entry ${what} at offset ${at}`);
    return d;
  };

  try {
    for (;;) {
      const at = s.offset;
      const h = await s.take(BLOCK);
      if (h.length === 0) {
        if (at === 0) return; // an empty input is an empty archive
        throw new TarError(`tar: truncated archive: missing end-of-archive marker at offset ${at}`);
      }
      if (h.length < BLOCK) throw new TarError(`tar: truncated entry header at offset ${at}`);
      if (h.every((b) => b === 0)) {
        // end of archive (the second zero block and any padding are not checked)
        if (opts.drain) await s.drain();
        return;
      }
      if (!checksumOk(h)) throw new TarError(`tar: bad header checksum at offset ${at}`);

      const magic = h.subarray(257, 263).toString('latin1');
      const isUstar = magic === 'ustar\0';
      const flag = String.fromCharCode(h[156]!).replace('\0', '0');
      let size = num(h, 124, 12, 'size', at);

      if (flag === 'x' || flag === 'g') {
        const recs = parsePax(await readMeta(size, at, 'pax'), at);
        if (flag === 'g') for (const [k, v] of recs) global.set(k, v);
        else pax = recs;
        continue;
      }
      if (flag === 'L' || flag === 'K') {
        const d = await readMeta(size, at, flag === 'L' ? 'GNU long name' : 'GNU long link');
        const z = d.indexOf(0);
        const v = (z >= 0 ? d.subarray(0, z) : d).toString('utf8');
        if (flag === 'L') longName = v;
        else longLink = v;
        continue;
      }

      let path = cstr(h, 0, 100);
      if (isUstar) {
        const prefix = cstr(h, 345, 155);
        if (prefix) path = `${prefix}/${path}`;
      }
      let linkname = cstr(h, 157, 100);
      const meta = new Map([...global, ...(pax ?? [])]);
      if (longName !== null) path = longName;
      if (longLink !== null) linkname = longLink;
      path = meta.get('path') ?? path;
      linkname = meta.get('linkpath') ?? linkname;
      size = paxNum(meta.get('size'), 'size', at) ?? size;
      const type = typeOf(flag);
      // Only regular files (and unknown types) carry data; links and directories have none even if size is set.
      const dataSize = type === 'file' || type === 'other' ? size : 0;
      const entry: TarEntry = {
        path,
        type,
        typeflag: flag,
        mode: num(h, 100, 8, 'mode', at) & 0o7777,
        uid: paxNum(meta.get('uid'), 'uid', at) ?? num(h, 108, 8, 'uid', at),
        gid: paxNum(meta.get('gid'), 'gid', at) ?? num(h, 116, 8, 'gid', at),
        mtime: paxNum(meta.get('mtime'), 'mtime', at) ?? num(h, 136, 12, 'mtime', at),
        size: dataSize,
        linkname,
        devmajor: isUstar || magic === 'ustar ' ? num(h, 329, 8, 'devmajor', at) : 0,
        devminor: isUstar || magic === 'ustar ' ? num(h, 337, 8, 'devminor', at) : 0,
        offset: at,
        data: null,
        body: emptyBody,
      };
      pax = null;
      longName = null;
      longLink = null;
      if (dataSize > maxEntry) throw new TarError(`tar: entry ${path} at offset ${at} is ${dataSize} bytes, over the limit of ${maxEntry}`);

      const pad = (BLOCK - (dataSize % BLOCK)) % BLOCK;
      let left = dataSize;
      const truncated = () => new TarError(`tar: truncated entry ${path} at offset ${at}`);
      if (buffer) {
        const d = await s.take(dataSize);
        if (d.length < dataSize) throw truncated();
        entry.data = d;
        left = 0;
      } else if (dataSize > 0) {
        let started = false;
        entry.body = () => {
          if (started) throw new TarError(`tar: body of ${path} read twice`);
          started = true;
          return (async function* () {
            while (left > 0) {
              const c = await s.some(Math.min(left, 1 << 20));
              if (c.length === 0) throw truncated();
              left -= c.length;
              yield c;
            }
          })();
        };
      }
      yield entry;
      while (left > 0) {
        const c = await s.some(Math.min(left, 1 << 20));
        if (c.length === 0) throw truncated();
        left -= c.length;
      }
      if ((await s.take(pad)).length < pad) throw truncated();
    }
  } finally {
    await s.close();
  }
}

async function* emptyBody(): AsyncIterable<Buffer> {}

/** Reads a whole in-memory archive into a list (convenience for small archives and tests). */
export async function readTarBuffer(b: Buffer, opts: TarReadOptions = {}): Promise<TarEntry[]> {
  const out: TarEntry[] = [];
  for await (const e of readTar(b, { ...opts, buffer: true })) out.push(e);
  return out;
}
