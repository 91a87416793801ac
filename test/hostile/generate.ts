// The hostile-peer generator: from a seeded Rng, the inputs a malicious worker, a careless or malicious
// admin client and an unauthenticated stranger can send a Shoal manager. Pure (no clock, no sockets): the
// clients in this folder send what it returns, so a seed replays the same attack.
//
// Every input is meant to be refused (4xx, a dropped message, or a closed connection). Inputs that would
// be valid *and* destructive (demote a manager, delete a node or service, change cluster settings,
// remove the writer's labels) are never generated: destructive endpoints only ever name objects that
// cannot exist ("nosuch~…": `~` is outside every id alphabet, so no prefix match either), and bodies
// sent to real objects always carry a value the API must refuse.
import { OP, closeFrame, encodeFrame, textFrame } from './ws-frame.ts';
import type { Rng } from './prng.ts';

// ---------------------------------------------------------------------------------------------------------
// Shared value makers

/** Values of every JSON type, to put where another type belongs. */
function wrongValue(rng: Rng): unknown {
  return rng.pick<() => unknown>([
    () => null,
    () => true,
    () => 0,
    () => -1,
    () => 1.5,
    () => '',
    () => rng.word(),
    () => [],
    () => [rng.word(), 1, null],
    () => ({}),
    () => ({ [rng.word()]: rng.word() }),
    () => ({ __proto__x: 1, constructor: { prototype: { polluted: true } } }),
  ])();
}

/** Numbers a parser or a counter may choke on (as JSON text: `1e999` parses to Infinity). */
// (Never one that parses to a valid small value: `1e-400` and `-0` are 0, a valid replica count.)
const HUGE_NUMBER_TEXT = [
  '1e308',
  '-1e308',
  '1e999',
  '-1e999',
  '9007199254740993',
  '-9007199254740993',
  '123456789012345678901234567890123456789',
  '4294967296',
  '1000000000',
  '2147483648',
];

function hugeNumberText(rng: Rng): string {
  return rng.pick(HUGE_NUMBER_TEXT);
}

/**
 * Large values are built once per shape and reused (same bytes every time, so determinism holds): at
 * hundreds of inputs per second, building megabytes per input would make the attacker the bottleneck.
 */
const bigCache = new Map<string, string>();
function cached(key: string, make: () => string): string {
  let v = bigCache.get(key);
  if (v === undefined) bigCache.set(key, (v = make()));
  return v;
}

/** Sizes of long strings: mostly tens to hundreds of kilobytes, sometimes up to `max`. */
function bigSize(rng: Rng, max: number): number {
  return Math.min(max, rng.chance(0.8) ? rng.pick([16 << 10, 64 << 10, 256 << 10]) : rng.pick([1 << 20, 2 << 20]));
}

/** A long string: filler, escapes, control characters or astral characters. */
function hugeString(rng: Rng, bytes: number): string {
  const unit = rng.pick(['a', '\\', '"', '\u0000', '\u001b[31m', '\u2028', '💥', '\ud800', '%', '../']);
  return cached(`s:${unit}:${bytes}`, () => unit.repeat(Math.max(1, Math.floor(bytes / Math.max(1, Buffer.byteLength(unit))))));
}

/** JSON text nested `depth` deep (arrays or objects). */
function deepJson(rng: Rng, depth: number): string {
  const arrays = rng.chance(0.5);
  return cached(`d:${arrays}:${depth}`, () => (arrays ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)));
}

/** Splices raw JSON text for one value into a serialised object (for numbers JSON.stringify cannot write). */
function withRawField(obj: Record<string, unknown>, path: string[], raw: string): string {
  const marker = `__RAW_${path.join('_')}__`;
  let cur: Record<string, unknown> = obj;
  for (const k of path.slice(0, -1)) {
    if (typeof cur[k] !== 'object' || cur[k] === null) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = marker;
  return JSON.stringify(obj).replace(JSON.stringify(marker), raw);
}

/** Every path (list of keys) to a leaf of `v`, arrays included by index. */
function leafPaths(v: unknown, prefix: string[] = [], out: string[][] = [], limit = 64): string[][] {
  if (out.length >= limit) return out;
  if (v !== null && typeof v === 'object') {
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v as object);
    if (entries.length === 0) out.push(prefix);
    for (const [k, x] of entries.slice(0, 8)) leafPaths(x, [...prefix, k], out, limit);
  } else out.push(prefix);
  return out;
}

function setPath(root: Record<string, unknown>, path: string[], value: unknown): void {
  let cur: Record<string, unknown> = root;
  for (const k of path.slice(0, -1)) {
    if (typeof cur[k] !== 'object' || cur[k] === null) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  if (path.length > 0) cur[path[path.length - 1]!] = value;
}

function deletePath(root: Record<string, unknown>, path: string[]): void {
  let cur: unknown = root;
  for (const k of path.slice(0, -1)) cur = (cur as Record<string, unknown> | null)?.[k];
  if (cur && typeof cur === 'object' && path.length > 0) delete (cur as Record<string, unknown>)[path[path.length - 1]!];
}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

// ---------------------------------------------------------------------------------------------------------
// Dispatcher (a worker's session over /dispatcher/v1)

/** Every message type a node sends a manager (api/dispatcher.ts AgentToManager). */
export const DISPATCHER_TYPES = ['hello', 'hb', 'renew', 'manager-up', 'status', 'log', 'log-end', 'exec-output', 'exec-result', 'usage'] as const;
export type DispatcherType = (typeof DISPATCHER_TYPES)[number];

/** Message-level mutations: each applies to every message type. */
export const MESSAGE_KINDS = [
  'malformed',
  'wrong-type',
  'unknown-field',
  'huge-number',
  'huge-string',
  'deep-nesting',
  'oversized',
  'truncated',
  'duplicated',
  'out-of-order',
  'wrong-owner',
] as const;
/** Frame- and encoding-level attacks (independent of the message type). */
/**
 * How often each message kind is drawn: the large ones (megabytes each) are rare, so a run sends many
 * inputs per second and still reaches the frame and parser limits regularly.
 */
const MESSAGE_WEIGHTS: Record<(typeof MESSAGE_KINDS)[number], number> = {
  malformed: 10,
  'wrong-type': 10,
  'unknown-field': 6,
  'huge-number': 8,
  'huge-string': 0.6,
  'deep-nesting': 1.5,
  oversized: 0.3,
  truncated: 8,
  duplicated: 6,
  'out-of-order': 8,
  'wrong-owner': 10,
};
export const FRAME_KINDS = [
  'binary',
  'invalid-utf8',
  'not-json',
  'unknown-type',
  'unmasked',
  'reserved-bits',
  'bad-opcode',
  'lying-length',
  'truncated-frame',
  'oversized-frame',
  'fragments',
  'big-control',
  'ping-flood',
  'bad-close',
] as const;

export interface DispatcherContext {
  /** This worker's node id. */
  nodeId: string;
  /** Task ids assigned to other nodes: the wrong-owner inputs name these. */
  otherTaskIds: readonly string[];
  /** A real CSR for this worker's key, or null: a valid `renew` costs the leader one signature. */
  csr: string | null;
  /** Largest frame the manager accepts (bytes); oversized inputs go just past it. */
  maxPayload: number;
}

export interface DispatcherInput {
  /** `<type>/<kind>` (e.g. `status/wrong-owner`) or `frame/<kind>`. */
  kind: string;
  /** Raw bytes for the session's stream (one or more complete, masked frames unless the kind says otherwise). */
  bytes: Buffer;
  /** The stream is unusable after these bytes (a compliant server closes it, or we end it): reconnect. */
  ends: boolean;
}

const TASK_STATES = [
  'new',
  'pending',
  'assigned',
  'accepted',
  'preparing',
  'ready',
  'starting',
  'running',
  'complete',
  'shutdown',
  'failed',
  'rejected',
  'remove',
  'orphaned',
];

function taskId(rng: Rng, ctx: DispatcherContext, owned: boolean): string {
  if (!owned && ctx.otherTaskIds.length > 0 && rng.chance(0.7)) return rng.pick(ctx.otherTaskIds);
  return rng.word(25);
}

function isoTime(rng: Rng): string {
  return new Date(Date.UTC(2026, 0, 1) + rng.int(365 * 86400_000)).toISOString();
}

/** A message of `type` with the right shape (the base every mutation starts from). */
export function baseMessage(rng: Rng, ctx: DispatcherContext, type: DispatcherType): Record<string, unknown> {
  const req = rng.chance(0.5) ? rng.word(12) : `${rng.range(1, 999)}`;
  switch (type) {
    case 'hello':
      return {
        t: 'hello',
        description: {
          hostname: `hostile-${rng.word(6)}`,
          platform: { os: 'linux', arch: rng.pick(['x64', 'arm64', 'mips']) },
          resources: { nanoCpus: rng.int(64) * 1e9, memoryBytes: rng.int(64) * 2 ** 30 },
          engineVersion: rng.word(),
          addr: `10.${rng.int(256)}.${rng.int(256)}.${rng.int(256)}`,
        },
      };
    case 'hb':
      return { t: 'hb' };
    case 'renew':
      return {
        t: 'renew',
        csr:
          ctx.csr && rng.chance(0.02)
            ? ctx.csr
            : `-----BEGIN CERTIFICATE REQUEST-----\n${rng.bytes(rng.range(1, 600)).toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`,
      };
    case 'manager-up':
      return { t: 'manager-up', advertise: rng.pick([`10.${rng.int(256)}.0.1:2377`, '127.0.0.1:1', 'evil:2377', '[::1]:2377']) };
    case 'status':
      return {
        t: 'status',
        updates: Array.from({ length: rng.range(1, 5) }, () => ({
          taskId: taskId(rng, ctx, true),
          state: rng.pick(TASK_STATES),
          message: rng.word(),
          timestamp: isoTime(rng),
        })),
      };
    case 'log':
      return {
        t: 'log',
        req,
        lines: Array.from({ length: rng.range(1, 5) }, () => ({
          taskId: taskId(rng, ctx, true),
          ts: isoTime(rng),
          stream: rng.pick(['stdout', 'stderr']),
          line: rng.word(40),
          ...(rng.chance(0.3) ? { partial: true } : {}),
        })),
      };
    case 'log-end':
      return { t: 'log-end', req, ...(rng.chance(0.5) ? { taskId: taskId(rng, ctx, true) } : {}), ...(rng.chance(0.3) ? { error: rng.word() } : {}) };
    case 'exec-output':
      return { t: 'exec-output', req, stream: rng.pick(['stdout', 'stderr']), data: rng.bytes(rng.range(0, 64)).toString('base64'), seq: rng.int(4) };
    case 'exec-result':
      return { t: 'exec-result', req, ...(rng.chance(0.7) ? { exitCode: rng.int(256) } : { error: rng.word() }) };
    case 'usage':
      return {
        t: 'usage',
        at: Date.UTC(2026, 0, 1) + rng.int(1e9),
        tasks: Object.fromEntries(
          Array.from({ length: rng.range(1, 4) }, () => [taskId(rng, ctx, true), { cpuNanos: rng.int(1e12), memoryBytes: rng.int(2 ** 32) }]),
        ),
      };
  }
}

/** Bulks a message of `type` up to about `bytes` of JSON with many entries (arrays, maps, long strings). */
function bulk(rng: Rng, ctx: DispatcherContext, m: Record<string, unknown>, bytes: number): Record<string, unknown> {
  const t = m.t as DispatcherType;
  const n = (per: number) => Math.max(1, Math.floor(bytes / per));
  if (t === 'status')
    m.updates = Array.from({ length: n(110) }, (_, i) => ({
      taskId: `t${i}x${rng.word(6)}`,
      state: 'running',
      message: '',
      timestamp: '2026-01-01T00:00:00.000Z',
    }));
  else if (t === 'log')
    m.lines = Array.from({ length: n(16_500) }, () => ({
      taskId: taskId(rng, ctx, true),
      ts: '2026-01-01T00:00:00.000Z',
      stream: 'stdout',
      line: 'x'.repeat(16_384),
    }));
  else if (t === 'usage') m.tasks = Object.fromEntries(Array.from({ length: n(70) }, (_, i) => [`t${i}${rng.word(8)}`, { cpuNanos: i, memoryBytes: i }]));
  else if (t === 'hello') (m.description as Record<string, unknown>).engineVersion = 'v'.repeat(bytes);
  else if (t === 'exec-output') m.data = Buffer.alloc(Math.floor((bytes * 3) / 4), 0x61).toString('base64');
  else m[rng.pick(['csr', 'advertise', 'error', 'req', 'pad'])] = 'z'.repeat(bytes);
  return m;
}

/** Two to five messages of `type` in an order no honest node sends. */
function outOfOrder(rng: Rng, ctx: DispatcherContext, type: DispatcherType): Record<string, unknown>[] {
  const req = rng.word(10);
  const tid = taskId(rng, ctx, rng.chance(0.5));
  switch (type) {
    case 'status':
      // States going backwards for one task within and across batches.
      return ['running', 'assigned', 'new', 'failed', 'starting'].map((state) => ({
        t: 'status',
        updates: [{ taskId: tid, state, message: '', timestamp: isoTime(rng) }],
      }));
    case 'log':
    case 'log-end':
      return [
        { t: 'log-end', req },
        { t: 'log', req, lines: [{ taskId: tid, ts: isoTime(rng), stream: 'stdout', line: 'after end', partial: true }] },
        { t: 'log-end', req, taskId: tid },
        { t: 'log-end', req },
      ];
    case 'exec-output':
    case 'exec-result':
      return [
        { t: 'exec-result', req, exitCode: 0 },
        { t: 'exec-output', req, stream: 'stdout', data: 'YWZ0ZXI=', seq: 5 },
        { t: 'exec-output', req, stream: 'stdout', data: 'YmVmb3Jl', seq: 0 },
        { t: 'exec-result', req, exitCode: 1 },
      ];
    case 'renew':
      return [baseMessage(rng, ctx, 'renew'), { t: 'hello', description: baseMessage(rng, ctx, 'hello').description }, baseMessage(rng, ctx, 'renew')];
    case 'hello':
      return [{ t: 'hb' }, baseMessage(rng, ctx, 'status'), baseMessage(rng, ctx, 'hello'), baseMessage(rng, ctx, 'hello')];
    default:
      return [baseMessage(rng, ctx, type), { t: 'hello', description: baseMessage(rng, ctx, 'hello').description }, baseMessage(rng, ctx, type)];
  }
}

/** The same message with references to other nodes' tasks. */
function wrongOwner(rng: Rng, ctx: DispatcherContext, type: DispatcherType): Record<string, unknown> {
  const other = () => (ctx.otherTaskIds.length > 0 ? rng.pick(ctx.otherTaskIds) : rng.word(25));
  switch (type) {
    case 'status':
      return {
        t: 'status',
        updates: [
          {
            taskId: other(),
            state: rng.pick(['failed', 'complete', 'shutdown', 'rejected', 'orphaned']),
            message: 'forged',
            timestamp: isoTime(rng),
            exitCode: 137,
          },
        ],
      };
    case 'log':
      return { t: 'log', req: rng.word(10), lines: [{ taskId: other(), ts: isoTime(rng), stream: 'stdout', line: 'forged' }] };
    case 'usage':
      return { t: 'usage', at: Date.UTC(2026, 0, 1), tasks: { [other()]: { cpuNanos: 1e18, memoryBytes: 2 ** 50 } } };
    case 'log-end':
      return { t: 'log-end', req: rng.word(10), taskId: other(), error: 'forged' };
    default: {
      const m = baseMessage(rng, ctx, type);
      m.taskId = other();
      return m;
    }
  }
}

/** One hostile input for a worker's dispatcher session. */
export function dispatcherInput(rng: Rng, ctx: DispatcherContext, mask: () => Buffer): DispatcherInput {
  const input = messageOrFrameInput(rng, ctx, mask);
  // A message that grew past the frame limit (escapes inflate) ends the session like an oversized frame.
  return input.bytes.length > ctx.maxPayload ? { ...input, ends: true } : input;
}

function messageOrFrameInput(rng: Rng, ctx: DispatcherContext, mask: () => Buffer): DispatcherInput {
  // Frame-level attacks end the stream, and each costs a reconnect (a TLS handshake on the leader):
  // keep them a small share so the run also delivers volume at the message level.
  if (rng.chance(0.015)) return frameInput(rng, ctx, mask);
  const type = rng.pick(DISPATCHER_TYPES);
  const kind = rng.weighted(MESSAGE_WEIGHTS);
  const frame = (text: string | Buffer) => textFrame(text, text.length > BIG_FRAME ? ZERO_MASK : mask());
  const one = (m: unknown): DispatcherInput => ({ kind: `${type}/${kind}`, bytes: frame(JSON.stringify(m)), ends: false });
  const m = baseMessage(rng, ctx, type);
  switch (kind) {
    case 'malformed': {
      if (rng.chance(0.3))
        return { kind: `${type}/${kind}`, bytes: frame(rng.pick(['null', '[]', '0', '"status"', 'true', `[${JSON.stringify(m)}]`])), ends: false };
      const paths = leafPaths(m).filter((p) => p[0] !== 't');
      if (paths.length > 0) deletePath(m, rng.pick(paths));
      else m.t = rng.pick([type.toUpperCase(), ` ${type}`, `${type}\u0000`]);
      return one(m);
    }
    case 'wrong-type': {
      const paths = leafPaths(m);
      const p = rng.pick(paths.length > 0 ? paths : [['t']]);
      // Also replace containers (e.g. `updates` itself), not only leaves.
      setPath(m, rng.chance(0.4) && p.length > 1 ? p.slice(0, -1) : p, wrongValue(rng));
      return one(m);
    }
    case 'unknown-field': {
      const extra = rng.pick<() => [string, unknown]>([
        () => ['__proto__', { isLeader: true, role: 'manager' }],
        () => ['constructor', { prototype: { polluted: 1 } }],
        () => ['nodeId', 'forged'],
        () => ['role', 'manager'],
        () => [rng.word(), wrongValue(rng)],
      ])();
      // `__proto__` must be an own key in the JSON text, so it is spliced in as text.
      const text = JSON.stringify(m).replace(/^\{/, `{${JSON.stringify(extra[0])}:${JSON.stringify(extra[1])},`);
      return { kind: `${type}/${kind}`, bytes: frame(text), ends: false };
    }
    case 'huge-number': {
      const paths = leafPaths(m).filter((p) => p[0] !== 't');
      const p = paths.length > 0 ? rng.pick(paths) : ['n'];
      return { kind: `${type}/${kind}`, bytes: frame(withRawField(m, p, hugeNumberText(rng))), ends: false };
    }
    case 'huge-string': {
      const paths = leafPaths(m);
      setPath(m, rng.pick(paths.length > 0 ? paths : [['t']]), hugeString(rng, bigSize(rng, ctx.maxPayload / 4)));
      return one(m);
    }
    case 'deep-nesting': {
      const depth = rng.chance(0.9) ? rng.pick([1000, 10_000]) : rng.pick([100_000, 500_000]);
      const paths = leafPaths(m).filter((p) => p[0] !== 't');
      const p = paths.length > 0 ? rng.pick(paths) : ['x'];
      return { kind: `${type}/${kind}`, bytes: frame(withRawField(m, p, deepJson(rng, depth))), ends: false };
    }
    case 'oversized': {
      // Either just under the frame limit (accepted by ws: what does the manager do with it?) or a
      // large honest-looking batch.
      const target = rng.chance(0.5) ? ctx.maxPayload - rng.range(64, 4096) : rng.range(256 << 10, 2 << 20);
      const text = JSON.stringify(bulk(rng, ctx, m, target));
      return { kind: `${type}/${kind}`, bytes: frame(Buffer.from(text).subarray(0, ctx.maxPayload)), ends: false };
    }
    case 'truncated': {
      const text = JSON.stringify(m);
      return { kind: `${type}/${kind}`, bytes: frame(text.slice(0, rng.int(Math.max(1, text.length - 1)))), ends: false };
    }
    case 'duplicated': {
      const times = rng.pick([2, 3, 10, 50]);
      return { kind: `${type}/${kind}`, bytes: Buffer.concat(Array.from({ length: times }, () => frame(JSON.stringify(m)))), ends: false };
    }
    case 'out-of-order':
      return { kind: `${type}/${kind}`, bytes: Buffer.concat(outOfOrder(rng, ctx, type).map((x) => frame(JSON.stringify(x)))), ends: false };
    case 'wrong-owner':
      return one(wrongOwner(rng, ctx, type));
  }
}

/** Payloads above this are masked with the all-zero key (valid, and no byte loop over megabytes). */
const BIG_FRAME = 64 << 10;
const ZERO_MASK = Buffer.alloc(4);

/** Frame attacks that carry megabytes are drawn a tenth as often as the others. */
const FRAME_WEIGHTS: Record<(typeof FRAME_KINDS)[number], number> = Object.fromEntries(
  FRAME_KINDS.map((k) => [k, k === 'oversized-frame' || k === 'fragments' ? 0.1 : 1]),
) as Record<(typeof FRAME_KINDS)[number], number>;

function frameInput(rng: Rng, ctx: DispatcherContext, mask: () => Buffer): DispatcherInput {
  const kind = rng.weighted(FRAME_WEIGHTS);
  const k = `frame/${kind}`;
  const json = Buffer.from(JSON.stringify({ t: 'hb' }));
  switch (kind) {
    case 'binary':
      // A well-formed frame of the wrong kind: a message-level violation, the session may go on.
      return { kind: k, bytes: encodeFrame({ opcode: OP.binary, payload: rng.bytes(rng.range(1, 4096)), mask: mask() }), ends: false };
    case 'invalid-utf8': {
      const bad = Buffer.concat([
        Buffer.from('{"t":"hb","x":"'),
        rng.pick([Buffer.from([0xff, 0xfe]), Buffer.from([0xc0, 0x80]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xe2, 0x82])]),
        Buffer.from('"}'),
      ]);
      return { kind: k, bytes: encodeFrame({ opcode: OP.text, payload: bad, mask: mask() }), ends: true };
    }
    case 'not-json':
      return {
        kind: k,
        bytes: textFrame(rng.pick(['hello', '{t:hb}', "{'t':'hb'}", '{"t":"hb"', '\u0000', 'NaN', '{"t":"hb"}{"t":"hb"}', '']), mask()),
        ends: false,
      };
    case 'unknown-type':
      return {
        kind: k,
        bytes: textFrame(JSON.stringify({ t: rng.pick(['bogus', 'welcome', 'assignments', 'cert', 'error', 'logs', 'exec', 1, null, '']) }), mask()),
        ends: false,
      };
    case 'unmasked':
      return { kind: k, bytes: encodeFrame({ opcode: OP.text, payload: json, mask: null }), ends: true };
    case 'reserved-bits':
      return { kind: k, bytes: encodeFrame({ opcode: OP.text, payload: json, mask: mask(), rsv: rng.range(1, 7) }), ends: true };
    case 'bad-opcode':
      return { kind: k, bytes: encodeFrame({ opcode: rng.pick([3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]), payload: json, mask: mask() }), ends: true };
    case 'lying-length':
      // Claims far more than the limit (up to 2^63-1): the server must refuse from the header alone.
      return {
        kind: k,
        bytes: encodeFrame({
          opcode: OP.text,
          payload: json,
          mask: mask(),
          claimedLength: rng.pick([BigInt(ctx.maxPayload) + 1n, 1n << 32n, (1n << 63n) - 1n, 1n << 63n]),
        }),
        ends: true,
      };
    case 'truncated-frame': {
      // A frame whose payload never finishes: the client ends the stream after it.
      const full = textFrame(JSON.stringify({ t: 'status', updates: [] }), mask());
      return { kind: k, bytes: full.subarray(0, rng.range(1, full.length - 1)), ends: true };
    }
    case 'oversized-frame':
      return {
        kind: k,
        bytes: encodeFrame({ opcode: OP.text, payload: Buffer.alloc(ctx.maxPayload + rng.range(1, 1024), 0x20), mask: ZERO_MASK }),
        ends: true,
      };
    case 'fragments': {
      const variant = rng.int(3);
      if (variant === 0) return { kind: k, bytes: encodeFrame({ opcode: OP.cont, payload: json, mask: mask() }), ends: true }; // continuation with no start
      if (variant === 1) {
        // Many small fragments that together pass the frame limit.
        const piece = Buffer.alloc(64 << 10, 0x20);
        const count = Math.ceil(ctx.maxPayload / piece.length) + 2;
        const frames = [encodeFrame({ opcode: OP.text, payload: Buffer.from('['), mask: mask(), fin: false })];
        for (let i = 0; i < count; i++) frames.push(encodeFrame({ opcode: OP.cont, payload: piece, mask: ZERO_MASK, fin: false }));
        return { kind: k, bytes: Buffer.concat(frames), ends: true };
      }
      // A new data frame while a fragmented one is open.
      return {
        kind: k,
        bytes: Buffer.concat([
          encodeFrame({ opcode: OP.text, payload: Buffer.from('{"t":'), mask: mask(), fin: false }),
          encodeFrame({ opcode: OP.text, payload: json, mask: mask() }),
        ]),
        ends: true,
      };
    }
    case 'big-control':
      return {
        kind: k,
        bytes: encodeFrame({ opcode: rng.pick([OP.ping, OP.pong, OP.close]), payload: rng.bytes(rng.range(126, 4096)), mask: mask() }),
        ends: true,
      };
    case 'ping-flood':
      return {
        kind: k,
        bytes: Buffer.concat(
          Array.from({ length: rng.pick([100, 1000]) }, () => encodeFrame({ opcode: OP.ping, payload: rng.bytes(rng.int(125)), mask: mask() })),
        ),
        ends: false,
      };
    case 'bad-close':
      return {
        kind: k,
        bytes: closeFrame(rng.pick([0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535]), rng.chance(0.5) ? rng.word() : '\ufffd'.repeat(40), mask()),
        ends: true,
      };
  }
}

// ---------------------------------------------------------------------------------------------------------
// Control API (an admin client: authenticated, hostile)

export const ADMIN_KINDS = [
  'invalid-json',
  'wrong-types',
  'deep-nesting',
  'huge-number',
  'huge-string',
  'huge-body',
  'unknown-fields',
  'odd-path',
  'odd-method',
  'path-traversal',
  'bad-percent',
  'bad-query',
  'content-type',
  'raw-http',
] as const;
export type AdminKind = (typeof ADMIN_KINDS)[number];

export interface AdminContext {
  /** Real node ids (targets of reads and of refused updates). */
  nodeIds: readonly string[];
  /** Real service ids. */
  serviceIds: readonly string[];
  /** Real task ids. */
  taskIds: readonly string[];
  /** The request body limit the API announces (bytes). */
  maxBody: number;
}

export interface AdminInput {
  kind: `admin/${AdminKind}`;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer | null;
  /** Bytes written as-is on a fresh TLS connection instead (malformed HTTP). */
  raw?: Buffer;
}

/** A name no object can have: `~` is outside every id and name alphabet, so no prefix match either. */
const nosuch = (rng: Rng) => `nosuch~${rng.word(6)}`;

/** Endpoints taking a JSON body, with a target that is safe to hit with a body that must be refused. */
function bodyEndpoint(rng: Rng, ctx: AdminContext): { path: string; field: string[]; base: Record<string, unknown> } {
  const node = ctx.nodeIds.length > 0 && rng.chance(0.7) ? rng.pick(ctx.nodeIds) : nosuch(rng);
  const svc = ctx.serviceIds.length > 0 && rng.chance(0.7) ? rng.pick(ctx.serviceIds) : nosuch(rng);
  const task = ctx.taskIds.length > 0 && rng.chance(0.5) ? rng.pick(ctx.taskIds) : nosuch(rng);
  return rng.pick([
    { path: `/v1/nodes/${node}/update`, field: ['availability'], base: { availability: 'sleepy', labelAdd: { [`h.${rng.word(4)}`]: 'x' } } },
    { path: `/v1/nodes/${node}/update`, field: ['labelAdd'], base: { labelAdd: { 'bad key!': 'x' } } },
    { path: `/v1/services/${svc}/scale`, field: ['replicas'], base: { replicas: -1 } },
    {
      path: `/v1/services/${svc}/update`,
      field: ['spec', 'mode', 'replicated', 'replicas'],
      base: { spec: { name: `hostile-${rng.word(4)}`, task: { image: 123 }, mode: { replicated: { replicas: -1 } } } },
    },
    {
      path: '/v1/services',
      field: ['spec', 'mode', 'replicated', 'replicas'],
      base: { spec: { name: `hostile-${rng.word(4)}`, task: { image: 123 }, mode: { replicated: { replicas: -1 } } } },
    },
    { path: '/v1/networks', field: ['driver'], base: { name: `hostile-${rng.word(4)}`, driver: 42 } },
    { path: `/v1/tasks/${task}/exec`, field: ['args'], base: { args: 'sh', timeoutMs: -1 } },
    { path: '/v1/cluster/update', field: ['heartbeatPeriodMs'], base: { heartbeatPeriodMs: -1 } },
    { path: '/v1/join-tokens/rotate', field: ['role'], base: { role: 'admin' } },
  ]);
}

/** A value the endpoint must refuse in `field` (never a valid one). */
function refusedValue(rng: Rng): unknown {
  // Not `{}` or `[]`: an empty label map or list is a valid no-op.
  return rng.pick([null, true, -1, 1.5, '', 'sleepy', [1, 2], { a: { b: 1 } }, { 'k~': 1 }, 'nosuch~x']);
}

/** Paths worth trying besides the real routes. */
const ODD_PATHS = [
  '/',
  '/v1',
  '/v1/',
  '/v2/nodes',
  '/v1/nodes/',
  '/v1//nodes',
  '/V1/NODES',
  '/v1/nodes?',
  '/v1/nodes#x',
  '/v1/info/..',
  '/raft/v1',
  '/dispatcher/v1',
  '/images/v1/export',
  '/images/v1/export?ref=',
  '/images/v1/',
  '/favicon.ico',
  '/.env',
  '/v1/ca/extra',
  '/v1/join/extra',
  '*',
  '/v1/nodes/%00',
  '/v1/services/\u00ff',
  '/v1/nodes/' + 'a'.repeat(8192),
];
const TRAVERSALS = [
  '/v1/../v1/nodes',
  '/v1/nodes/../../etc/passwd',
  '/v1/nodes/..%2f..%2fetc%2fpasswd',
  '/v1/%2e%2e/%2e%2e/etc/passwd',
  '/images/v1/../../v1/join-tokens',
  '/v1/services/..%5c..%5cwindows',
  '/v1/nodes/%2e%2e',
  '/images/v1/export?ref=../../../../etc/shadow',
  '/images/v1/export?ref=%2e%2e%2fraft',
];
const BAD_PERCENT = [
  '/v1/nodes/%zz',
  '/v1/nodes/%',
  '/v1/services/%e0%a4%a',
  '/v1/nodes/%ff%fe',
  '/v1/tasks/%c0%af/exec',
  '/v1/networks/%d8%00',
  '/v1/logs?service=%zz',
  '/v1/tasks?service=%',
  '/v1/%%%%',
];
const ODD_METHODS = ['PUT', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND', 'FOO', 'M-SEARCH', 'HEAD', 'DELETE'];

function readPath(rng: Rng, ctx: AdminContext): string {
  const node = ctx.nodeIds.length > 0 ? rng.pick(ctx.nodeIds) : nosuch(rng);
  const svc = ctx.serviceIds.length > 0 ? rng.pick(ctx.serviceIds) : nosuch(rng);
  return rng.pick([
    '/v1/info',
    '/v1/nodes',
    `/v1/nodes/${node}`,
    '/v1/services',
    `/v1/services/${svc}`,
    '/v1/tasks',
    `/v1/tasks?service=${svc}`,
    '/v1/networks',
    '/v1/cluster',
  ]);
}

const JSON_HEADERS = { 'content-type': 'application/json' };

/** One hostile control-API request. */
/** How often each admin kind is drawn: the ones that carry megabytes are rare. */
const ADMIN_WEIGHTS: Record<AdminKind, number> = {
  'invalid-json': 10,
  'wrong-types': 10,
  'deep-nesting': 1.5,
  'huge-number': 8,
  'huge-string': 1,
  'huge-body': 0.3,
  'unknown-fields': 8,
  'odd-path': 8,
  'odd-method': 8,
  'path-traversal': 6,
  'bad-percent': 6,
  'bad-query': 6,
  'content-type': 6,
  'raw-http': 3,
};

export function adminInput(rng: Rng, ctx: AdminContext): AdminInput {
  const kind = rng.weighted(ADMIN_WEIGHTS);
  const k = `admin/${kind}` as const;
  const post = (path: string, body: string | Buffer, headers: Record<string, string> = JSON_HEADERS): AdminInput => ({
    kind: k,
    method: 'POST',
    path,
    headers,
    body: Buffer.from(body),
  });
  switch (kind) {
    case 'invalid-json': {
      const e = bodyEndpoint(rng, ctx);
      return post(
        e.path,
        rng.pick([
          '{',
          '{"a":',
          "{'a':1}",
          '{"a":1,}',
          'NaN',
          '\ufeff{}',
          '{"a":1}garbage',
          '\u0000',
          '{"a":"\\x41"}',
          '[',
          '{"a":01}',
          '"\\ud800"',
          Buffer.from([0x7b, 0xff, 0xfe, 0x7d]).toString('latin1'),
        ]),
      );
    }
    case 'wrong-types': {
      const e = bodyEndpoint(rng, ctx);
      const body = clone(e.base);
      setPath(body, e.field, refusedValue(rng));
      if (rng.chance(0.3)) return post(e.path, JSON.stringify(rng.pick([null, 1, 'x', [], [body], true])));
      return post(e.path, JSON.stringify(body));
    }
    case 'deep-nesting': {
      const e = bodyEndpoint(rng, ctx);
      const depth = rng.chance(0.9) ? rng.pick([1000, 10_000]) : rng.pick([100_000, Math.floor(ctx.maxBody / 6)]);
      return post(e.path, withRawField(clone(e.base), e.field, deepJson(rng, depth)));
    }
    case 'huge-number': {
      const e = bodyEndpoint(rng, ctx);
      return post(e.path, withRawField(clone(e.base), e.field, hugeNumberText(rng)));
    }
    case 'huge-string': {
      const e = bodyEndpoint(rng, ctx);
      const body = clone(e.base);
      const big = hugeString(rng, bigSize(rng, Math.floor(ctx.maxBody / 2)));
      // A huge label key/value on a real node is a label-size attack; a huge name or image a spec-size one.
      if (e.path.endsWith('/update') && e.path.startsWith('/v1/nodes/')) body.labelAdd = rng.chance(0.5) ? { [big]: 'x' } : { 'bad key!': big };
      else setPath(body, e.field, big);
      return post(e.path, JSON.stringify(body));
    }
    case 'huge-body': {
      const e = bodyEndpoint(rng, ctx);
      const size = ctx.maxBody + (rng.chance(0.9) ? rng.pick([1, 1024, 1 << 20]) : 8 << 20);
      return post(
        e.path,
        cached(`b:${size}`, () => `{"pad":"${'p'.repeat(size)}"}`),
      );
    }
    case 'unknown-fields': {
      const e = bodyEndpoint(rng, ctx);
      const body = clone(e.base);
      const text = JSON.stringify(body).replace(
        /^\{/,
        `{"__proto__":{"admin":true},"constructor":{"prototype":{"x":1}},"${rng.word()}":${JSON.stringify(wrongValue(rng))},`,
      );
      return post(e.path, text);
    }
    case 'odd-path': {
      const path = rng.chance(0.5)
        ? rng.pick(ODD_PATHS)
        : `/v1/${rng.word()}/${rng.word()}${rng.chance(0.3) ? '/' + 'x'.repeat(rng.pick([100, 4096, 16_384, 65_536])) : ''}`;
      return { kind: k, method: rng.pick(['GET', 'POST']), path, headers: JSON_HEADERS, body: rng.chance(0.5) ? Buffer.from('{}') : null };
    }
    case 'odd-method': {
      const method = rng.pick(ODD_METHODS);
      // DELETE only ever names objects that cannot exist.
      const path =
        method === 'DELETE'
          ? rng.pick([`/v1/nodes/${nosuch(rng)}`, `/v1/services/${nosuch(rng)}`, `/v1/networks/${nosuch(rng)}`, '/v1/nodes', '/v1/cluster', '/v1/join-tokens'])
          : readPath(rng, ctx);
      return { kind: k, method, path, headers: JSON_HEADERS, body: rng.chance(0.5) ? Buffer.from('{"x":1}') : null };
    }
    case 'path-traversal':
      return { kind: k, method: 'GET', path: rng.pick(TRAVERSALS), headers: {}, body: null };
    case 'bad-percent':
      return { kind: k, method: rng.pick(['GET', 'POST']), path: rng.pick(BAD_PERCENT), headers: JSON_HEADERS, body: Buffer.from('{}') };
    case 'bad-query': {
      const svc = ctx.serviceIds.length > 0 ? rng.pick(ctx.serviceIds) : nosuch(rng);
      const q = rng.pick([
        `service=${svc}&tail=-1`,
        `service=${svc}&tail=1e999`,
        `service=${svc}&tail=abc`,
        `service=${svc}&since=notatime`,
        `service=${svc}&since=99999-99-99`,
        'service=',
        `service=${svc}&service=${svc}`,
        `${'x='.repeat(5000)}`,
        `service=${svc}&follow=maybe&tail=9007199254740993`,
      ]);
      return { kind: k, method: 'GET', path: rng.chance(0.5) ? `/v1/logs?${q}` : `/v1/tasks?${q}`, headers: {}, body: null };
    }
    case 'content-type': {
      const e = bodyEndpoint(rng, ctx);
      const headers = rng.pick<Record<string, string>>([
        { 'content-type': 'text/plain' },
        { 'content-type': 'multipart/form-data; boundary=x' },
        { 'content-type': 'application/json', 'content-encoding': 'gzip' },
        { 'content-type': 'application/json; charset=utf-16' },
        { 'content-type': 'application/x-www-form-urlencoded' },
      ]);
      return post(e.path, rng.chance(0.5) ? 'a=1&b=2' : JSON.stringify(e.base), headers);
    }
    case 'raw-http':
      return { kind: k, method: 'RAW', path: '', headers: {}, body: null, raw: rawHttp(rng, ctx) };
  }
}

/** Malformed HTTP/1.1 requests (for a raw TLS connection). */
function rawHttp(rng: Rng, ctx: AdminContext): Buffer {
  const host = 'Host: shoal\r\n';
  // Thunks: only the chosen request is built (some are hundreds of kilobytes).
  const make = rng.pick<() => string>([
    () => 'GET /v1/info\r\n\r\n', // no version
    () => 'GET /v1/info HTTP/9.9\r\n' + host + '\r\n',
    () => 'GET  /v1/info  HTTP/1.1\r\n' + host + '\r\n',
    () => 'G\u00c9T /v1/info HTTP/1.1\r\n' + host + '\r\n',
    () => 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
    () => `GET /v1/info HTTP/1.1\r\n${host}X-Big: ${'h'.repeat(rng.pick([16_384, 65_536, 200_000]))}\r\n\r\n`,
    () => `GET /v1/info HTTP/1.1\r\n${host}${Array.from({ length: 3000 }, (_, i) => `X-${i}: v\r\n`).join('')}\r\n`,
    () => `POST /v1/services HTTP/1.1\r\n${host}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    () => `POST /v1/services HTTP/1.1\r\n${host}Content-Length: -1\r\n\r\n{}`,
    () => `POST /v1/services HTTP/1.1\r\n${host}Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}`,
    () => `POST /v1/services HTTP/1.1\r\n${host}Content-Length: ${ctx.maxBody * 1000}\r\n\r\n{`,
    () => `POST /v1/services HTTP/1.1\r\n${host}Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
    () => `POST /v1/services HTTP/1.1\r\n${host}Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n{}\r\n`,
    () => `GET /v1/info HTTP/1.1\r\n${host}Bad Header\r\n\r\n`,
    () => `GET /v1/info HTTP/1.1\r\n${host}X: a\nY: b\r\n\r\n`,
    () => `GET /v1/info HTTP/1.1\r\n${host}\r\n`.repeat(200), // pipelined
    () => `GET /dispatcher/v1 HTTP/1.1\r\n${host}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 99\r\nSec-WebSocket-Key: x\r\n\r\n`,
    () =>
      `GET /${rng.word()} HTTP/1.1\r\n${host}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    () => `CONNECT 10.0.0.1:22 HTTP/1.1\r\n${host}\r\n`,
    () => rng.bytes(rng.range(1, 2048)).toString('latin1'),
  ]);
  return Buffer.from(make(), 'latin1');
}

// ---------------------------------------------------------------------------------------------------------
// Unauthenticated clients (no certificate, or not even TLS)

export const UNAUTH_KINDS = ['conn-hold', 'tls-stall', 'garbage-tcp', 'headers-stall', 'slowloris-body', 'upgrade', 'join-hostile', 'ca-flood'] as const;
export type UnauthKind = (typeof UNAUTH_KINDS)[number];

/** Every path an upgrade is tried on: the two real WebSocket endpoints and others. */
export const UPGRADE_PATHS = [
  '/dispatcher/v1',
  '/raft/v1',
  '/v1/join',
  '/v1/ca',
  '/v1/nodes',
  '/images/v1/export',
  '/',
  '/x',
  '/dispatcher/v1/../x',
  '/raft/v1?x=1',
];

export interface UnauthInput {
  kind: `unauth/${UnauthKind}`;
  /** Plain TCP (no TLS handshake at all) or TLS without a client certificate. */
  transport: 'tcp' | 'tls';
  /** Written at once after connecting (after the handshake for TLS). */
  first: Buffer;
  /** Then written one byte at a time, `dripMs` apart (slowloris). */
  drip: Buffer;
  dripMs: number;
  /** The upgrade path, for 'upgrade' inputs (the run checks each is answered or closed at once). */
  upgradePath?: string;
}

const WS_UPGRADE = (path: string) =>
  `GET ${path} HTTP/1.1\r\nHost: shoal\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;

/** A prefix of a TLS ClientHello record (content type 22, TLS 1.0 record version, a long length). */
const CLIENT_HELLO_PREFIX = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);

/** Built once: the same megabytes every time, and building them per input would slow the attack. */
function once<T>(f: () => T): () => T {
  let v: T | undefined;
  return () => (v ??= f());
}
const BIG_JOIN_BODY = once(() => JSON.stringify({ token: 'x'.repeat(1 << 20), csr: 'y'.repeat(1 << 20), advertise: 'a:1' }));
const DEEP_JOIN_BODY = once(() => `{"token":${'['.repeat(50_000)}${']'.repeat(50_000)}}`);

export function unauthInput(rng: Rng): UnauthInput {
  const kind = rng.pick(UNAUTH_KINDS);
  const k = `unauth/${kind}` as const;
  const none = Buffer.alloc(0);
  switch (kind) {
    case 'conn-hold':
      return { kind: k, transport: 'tcp', first: none, drip: none, dripMs: 0 };
    case 'tls-stall':
      return {
        kind: k,
        transport: 'tcp',
        first: CLIENT_HELLO_PREFIX.subarray(0, rng.range(1, CLIENT_HELLO_PREFIX.length)),
        drip: Buffer.alloc(64, 0x41),
        dripMs: 2000,
      };
    case 'garbage-tcp':
      return { kind: k, transport: 'tcp', first: rng.bytes(rng.range(1, 4096)), drip: none, dripMs: 0 };
    case 'headers-stall':
      return {
        kind: k,
        transport: 'tls',
        first: Buffer.from('GET /v1/ca HTTP/1.1\r\nHost: shoal\r\n'),
        drip: Buffer.from('X-Slow: ' + 'a'.repeat(200)),
        dripMs: 1000,
      };
    case 'slowloris-body':
      return {
        kind: k,
        transport: 'tls',
        first: Buffer.from(`POST /v1/join HTTP/1.1\r\nHost: shoal\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"token":"`),
        drip: Buffer.alloc(500, 0x61),
        dripMs: 1000,
      };
    case 'upgrade': {
      const path = rng.pick(UPGRADE_PATHS);
      return { kind: k, transport: 'tls', first: Buffer.from(WS_UPGRADE(path)), drip: none, dripMs: 0, upgradePath: path };
    }
    case 'join-hostile': {
      const body = rng.pick<() => string>([
        () => JSON.stringify({ token: `SHOAL-1-${rng.word(50)}-${rng.word(25)}`, csr: 'x', advertise: '1.2.3.4:2377' }),
        BIG_JOIN_BODY,
        DEEP_JOIN_BODY,
        () => '{"token":',
        () => JSON.stringify({ token: null, csr: 1, advertise: [] }),
        () =>
          JSON.stringify({
            token: 'SHOAL-2-abc',
            csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----',
            advertise: `${'h'.repeat(300)}:99999999`,
          }),
      ])();
      return {
        kind: k,
        transport: 'tls',
        first: Buffer.from(
          `POST /v1/join HTTP/1.1\r\nHost: shoal\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        ),
        drip: none,
        dripMs: 0,
      };
    }
    case 'ca-flood':
      return {
        kind: k,
        transport: 'tls',
        first: Buffer.from('GET /v1/ca HTTP/1.1\r\nHost: shoal\r\n\r\n'.repeat(rng.pick([1, 10, 100]))),
        drip: none,
        dripMs: 0,
      };
  }
}
