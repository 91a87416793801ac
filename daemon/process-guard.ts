// The last line of defence of a `shoal daemon` process: an exception nobody caught, or a promise
// rejection nobody handled, is logged with its stack — never lost — and then one of two things happens.
//
// * Errors that clearly belong to one connection (a peer reset it, wrote a bad WebSocket frame, failed
//   its TLS handshake, or the stream was already gone) end only that connection: the daemon goes on.
//   Every such error should already be handled where the connection lives (transport/session.ts); this
//   is for the one that slipped through, so a peer can never take the daemon down with it.
// * Anything else means the process's state may be inconsistent (an invariant broke half-way through
//   an update): the daemon exits with status 70 (EX_SOFTWARE) and the supervisor (systemd
//   Restart=always, or `shoal lab restart`) starts it again; it re-adopts its containers and rejoins.
//   Unhandled rejections are treated the same way, except that a burst is not needed: one is enough,
//   unless it is a per-connection error.
// Decision logic is pure (classify); install() is the adapter.

/** Error codes that only ever concern one socket or stream. */
const CONNECTION_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'ETIMEDOUT',
  'ERR_STREAM_DESTROYED',
  'ERR_STREAM_WRITE_AFTER_END',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ERR_HTTP_HEADERS_SENT',
  'HPE_INVALID_METHOD',
  'HPE_HEADER_OVERFLOW',
]);

/** 'continue' for an error that concerns one connection only; 'exit' otherwise. */
export function classify(err: unknown): 'continue' | 'exit' {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return 'exit';
  if (CONNECTION_CODES.has(code)) return 'continue';
  // ws protocol errors (WS_ERR_UNSUPPORTED_MESSAGE_LENGTH, WS_ERR_INVALID_UTF8, …) and TLS/SSL failures.
  if (code.startsWith('WS_ERR_') || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return 'continue';
  return 'exit';
}

export function describe(err: unknown): string {
  if (err instanceof Error)
    return `${err.stack ?? `${err.name}: ${err.message}`}${(err as { code?: unknown }).code ? ` (code ${String((err as { code?: unknown }).code)})` : ''}`;
  return `non-error value thrown: ${String(err)}`;
}

let installed = false;

/** Installs the process-wide handlers once. `exit` is injectable for tests. */
export function installProcessGuard(log: (line: string) => void, exit: (code: number) => void = (c) => process.exit(c)): void {
  if (installed) return;
  installed = true;
  const handle = (kind: string) => (err: unknown) => {
    const verdict = classify(err);
    log(`${kind} (${verdict === 'continue' ? 'one connection: continuing' : 'exiting for the supervisor to restart the daemon'}): ${describe(err)}`);
    if (verdict === 'exit') exit(70);
  };
  process.on('uncaughtException', handle('uncaught exception'));
  process.on('unhandledRejection', handle('unhandled rejection'));
}
