// The page's side of the dashboard server's API (cli/dashboard/server.ts): the session's CSRF token, the
// four actions, and Server-Sent Event subscriptions (EventSource reconnects by itself; the session
// cookie goes with every request because the page and the API share one origin).
import { useEffect } from 'preact/hooks';
import { CSRF_HEADER, type SessionInfo } from './protocol.ts';

let session: Promise<SessionInfo> | null = null;

export function getSession(): Promise<SessionInfo> {
  session ??= fetch('/api/session', { credentials: 'same-origin' }).then(async (r) => {
    if (!r.ok) throw new Error(`${r.status}: ${(await r.text()).trim()}`);
    return (await r.json()) as SessionInfo;
  });
  return session;
}

/** POSTs an action; rejects with the server's message (shown in the confirm dialog). */
export async function post(path: string, body: unknown): Promise<unknown> {
  const { csrf } = await getSession();
  const r = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json', [CSRF_HEADER]: csrf },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  let parsed: { error?: { message?: string } } | null = null;
  try {
    parsed = JSON.parse(text) as { error?: { message?: string } };
  } catch {
    /* a plain-text refusal (auth) */
  }
  if (!r.ok) throw new Error(parsed?.error?.message ?? (text.trim() || `HTTP ${r.status}`));
  return parsed;
}

/**
 * Subscribes to an SSE endpoint while the component is mounted: `handlers` maps event names to
 * callbacks (each gets the parsed data). The URL decides the subscription: the handlers of the first
 * render are the ones used (they should only touch refs and state setters).
 */
export function useSse(url: string | null, handlers: Record<string, (data: unknown) => void>): void {
  useEffect(() => {
    if (url === null) return;
    const es = new EventSource(url);
    for (const [ev, fn] of Object.entries(handlers)) es.addEventListener(ev, (m) => fn(JSON.parse((m as MessageEvent<string>).data)));
    return () => es.close();
  }, [url]);
}
