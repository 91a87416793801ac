// Raft as each manager sees it (its own GET /v1/info): role, the leader it follows, term, commit and
// applied index. Managers that disagree on the leader or term, or lag in applied index, stand out.
import { type ComponentChild, h } from 'preact';
import type { Model } from './model.ts';
import { badge } from './ui.ts';

export function RaftView(p: { m: Model }): ComponentChild {
  const rows = [...p.m.raft.values()].sort((a, b) => a.addr.localeCompare(b.addr));
  const byId = new Map([...p.m.nodes.values()].map((n) => [n.id, n.hostname]));
  const maxApplied = Math.max(0, ...rows.map((r) => r.applied ?? 0));
  return h(
    'div',
    { class: 'view raft', 'data-view': 'raft' },
    h(
      'table',
      null,
      h('thead', null, h('tr', null, ...['Manager', 'Address', 'Role', 'Leader', 'Term', 'Commit', 'Applied', 'Lag'].map((c) => h('th', null, c)))),
      h(
        'tbody',
        null,
        ...rows.map((r) =>
          h(
            'tr',
            { 'data-manager': r.addr, 'data-role': r.role ?? 'unreachable' },
            h('td', null, r.nodeId ? (byId.get(r.nodeId) ?? r.nodeId.slice(0, 12)) : '?'),
            h('td', null, r.addr),
            h('td', null, r.error ? badge('down', 'unreachable') : badge(r.role === 'leader' ? 'running' : 'ready', r.role ?? '?')),
            h('td', null, r.leader ? (byId.get(r.leader) ?? r.leader.slice(0, 12)) : r.error ? h('span', { class: 'error' }, r.error) : '–'),
            h('td', null, r.term ?? '–'),
            h('td', null, r.commit ?? '–'),
            h('td', null, r.applied ?? '–'),
            h('td', null, r.applied !== null ? maxApplied - r.applied : '–'),
          ),
        ),
      ),
    ),
  );
}
