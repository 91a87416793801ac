// WebSocket frames written byte by byte (RFC 6455 §5.2), so the hostile worker can send what no
// well-behaved library would: unmasked frames, reserved bits, unknown opcodes, lengths that lie,
// truncated frames, oversized control frames and invalid UTF-8 in text frames. Pure: the masking key
// comes from the caller.

export const OP = { cont: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

export interface FrameOptions {
  opcode: number;
  payload: Buffer;
  /** FIN bit (default true). */
  fin?: boolean;
  /** RSV1-3 bits, 0..7 (default 0). */
  rsv?: number;
  /** Clients must mask; null sends the frame unmasked (a protocol error). */
  mask: Buffer | null;
  /** Length written in the header instead of the payload's (a lying length). */
  claimedLength?: bigint;
}

export function encodeFrame(o: FrameOptions): Buffer {
  const len = o.claimedLength ?? BigInt(o.payload.length);
  const b0 = ((o.fin ?? true) ? 0x80 : 0) | (((o.rsv ?? 0) & 7) << 4) | (o.opcode & 0x0f);
  const maskBit = o.mask ? 0x80 : 0;
  let header: Buffer;
  if (len < 126n) {
    header = Buffer.from([b0, maskBit | Number(len)]);
  } else if (len < 65536n) {
    header = Buffer.alloc(4);
    header[0] = b0;
    header[1] = maskBit | 126;
    header.writeUInt16BE(Number(len), 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = b0;
    header[1] = maskBit | 127;
    header.writeBigUInt64BE(len & 0xffffffffffffffffn, 2);
  }
  if (!o.mask) return Buffer.concat([header, o.payload]);
  // A zero key is a valid mask that leaves the payload as is: large payloads skip the byte loop.
  if (o.mask.readUInt32BE(0) === 0) return Buffer.concat([header, o.mask.subarray(0, 4), o.payload]);
  const masked = Buffer.allocUnsafe(o.payload.length);
  for (let i = 0; i < o.payload.length; i++) masked[i] = o.payload[i]! ^ o.mask[i & 3]!;
  return Buffer.concat([header, o.mask.subarray(0, 4), masked]);
}

/** A well-formed masked text frame carrying `text`. */
export function textFrame(text: string | Buffer, mask: Buffer): Buffer {
  return encodeFrame({ opcode: OP.text, payload: typeof text === 'string' ? Buffer.from(text, 'utf8') : text, mask });
}

/** A close frame with a status code and reason. */
export function closeFrame(code: number, reason: string, mask: Buffer): Buffer {
  const p = Buffer.alloc(2 + Buffer.byteLength(reason));
  p.writeUInt16BE(code & 0xffff, 0);
  p.write(reason, 2);
  return encodeFrame({ opcode: OP.close, payload: p, mask });
}
