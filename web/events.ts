// The events feed: what changed in the cluster, newest first, as `shoal events` prints it (the server
// keeps the last 500 and replays the last ten minutes when it connects).
import { type ComponentChild, h } from 'preact';
import type { ClusterEvent } from '../api/events.ts';
import type { Model } from './model.ts';

function describe(e: ClusterEvent): string {
  const a = e.actor.attributes ?? {};
  const pairs: string[] = [];
  for (const k of Object.keys(a)) {
    if (!k.endsWith('.old')) continue;
    const base = k.slice(0, -4);
    pairs.push(`${base} ${a[k]} → ${a[`${base}.new`] ?? '?'}`);
  }
  for (const [k, v] of Object.entries(a)) if (!k.endsWith('.old') && !k.endsWith('.new') && !k.startsWith('label.')) pairs.push(`${k}=${v}`);
  return pairs.join(', ');
}

export function EventRow(p: { e: ClusterEvent }): ComponentChild {
  const e = p.e;
  const t = new Date(e.time);
  return h(
    'li',
    { 'data-type': e.type, 'data-action': e.action, 'data-seq': e.seq },
    h('time', { dateTime: e.time }, Number.isNaN(t.getTime()) ? e.time : t.toLocaleTimeString()),
    h('span', { class: 'type' }, e.type),
    h('span', { class: 'action' }, e.action),
    h('span', { class: 'actor' }, e.actor.name || e.actor.id.slice(0, 12)),
    h('span', { class: 'attrs' }, describe(e)),
  );
}

export function EventsView(p: { m: Model }): ComponentChild {
  const rows = [...p.m.events].reverse();
  return h(
    'div',
    { class: 'view events', 'data-view': 'events' },
    rows.length === 0
      ? h('p', { class: 'muted' }, p.m.link.state === 'live' ? 'No events yet.' : `No event stream: ${p.m.link.message}`)
      : h('ul', { class: 'feed' }, ...rows.map((e) => h(EventRow, { e }))),
  );
}
