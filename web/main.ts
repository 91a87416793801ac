// The dashboard page: one Server-Sent Events stream (/api/stream) feeds the model (a snapshot, then
// deltas), and every change re-renders the current view once per animation frame. Views are chosen by
// the URL's hash: #/map (default), #/services, #/service/ID, #/nodes, #/events, #/raft.
import { type ComponentChild, h, render } from 'preact';
import { useState } from 'preact/hooks';
import { getSession } from './client.ts';
import { EventsView } from './events.ts';
import { MapView } from './map.ts';
import { Model } from './model.ts';
import { NodesView } from './nodes.ts';
import type { Delta, Snapshot } from './protocol.ts';
import { RaftView } from './raft.ts';
import { ServiceView } from './service.ts';
import { ServicesView } from './services.ts';
import { ConfirmDialog, type ConfirmRequest, badge } from './ui.ts';

const model = new Model();
let contextName = '';
let loaded = false;

const NAV: [string, string][] = [
  ['map', 'Cluster map'],
  ['services', 'Services'],
  ['nodes', 'Nodes'],
  ['events', 'Events'],
  ['raft', 'Raft'],
];

function route(): { view: string; arg: string } {
  const [view = 'map', arg = ''] = location.hash.replace(/^#\/?/, '').split('/');
  return { view: view || 'map', arg: decodeURIComponent(arg) };
}

function App(): ComponentChild {
  const [ask, setAsk] = useState<ConfirmRequest | null>(null);
  const r = route();
  const m = model;
  let body: ComponentChild;
  if (!loaded) body = h('p', { class: 'muted' }, 'loading the cluster…');
  else if (r.view === 'services') body = h(ServicesView, { m, ask: setAsk });
  else if (r.view === 'service') body = h(ServiceView, { m, id: r.arg, ask: setAsk, key: r.arg });
  else if (r.view === 'nodes') body = h(NodesView, { m, ask: setAsk });
  else if (r.view === 'events') body = h(EventsView, { m });
  else if (r.view === 'raft') body = h(RaftView, { m });
  else body = h(MapView, { m });
  const linkText = !m.connected ? 'dashboard server unreachable' : m.link.state === 'live' ? 'live' : m.link.state;
  return h(
    'div',
    { class: 'app' },
    h(
      'header',
      { class: 'top' },
      h('h1', null, 'Shoal'),
      h('span', { class: 'cluster' }, `cluster ${m.clusterId.slice(0, 12)}`, contextName ? ` · ${contextName}` : ''),
      h(
        'nav',
        null,
        ...NAV.map(([v, label]) => h('a', { href: `#/${v}`, class: r.view === v || (v === 'services' && r.view === 'service') ? 'current' : '' }, label)),
      ),
      h(
        'span',
        { class: 'link', title: m.link.message, 'data-link': m.connected ? m.link.state : 'offline' },
        badge(m.connected && m.link.state === 'live' ? 'running' : 'down', linkText),
      ),
    ),
    m.connected && m.link.state !== 'live' ? h('div', { class: 'banner' }, m.link.message) : null,
    h('main', null, body),
    ask ? h(ConfirmDialog, { req: ask, close: () => setAsk(null) }) : null,
  );
}

const root = document.getElementById('app')!;
let frame = 0;
function rerender(): void {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    render(h(App, null), root);
    // For tests and the benchmark: which cluster change the DOM now reflects.
    document.body.dataset.cause = model.lastCause;
    document.body.dataset.loaded = loaded ? '1' : '0';
  });
}

function connect(): void {
  const es = new EventSource('/api/stream');
  es.addEventListener('open', () => {
    model.connected = true;
    rerender();
  });
  es.addEventListener('snapshot', (e) => {
    model.load(JSON.parse((e as MessageEvent<string>).data) as Snapshot);
    model.connected = true;
    loaded = true;
    rerender();
  });
  es.addEventListener('delta', (e) => {
    model.apply(JSON.parse((e as MessageEvent<string>).data) as Delta);
    rerender();
  });
  // EventSource retries by itself (the server sends a fresh snapshot on every connection).
  es.addEventListener('error', () => {
    model.connected = false;
    rerender();
  });
}

window.addEventListener('hashchange', rerender);
getSession()
  .then((s) => {
    contextName = s.context;
    connect();
    rerender();
  })
  .catch((e: Error) => {
    root.textContent = `Cannot open the dashboard: ${e.message}`;
  });
rerender();
