// The nodes: role, state, availability, labels, resources, and CPU and memory summed over each node's
// tasks (GET /api/usage?all=1), with drain / activate behind the confirm dialog.
import { type ComponentChild, h } from 'preact';
import { useRef, useState } from 'preact/hooks';
import { post, useSse } from './client.ts';
import { bytes, type Model } from './model.ts';
import type { DashNode, UsageSample } from './protocol.ts';
import type { Ask } from './services.ts';
import { Chart, badge, pushPoint } from './ui.ts';

function availabilityAction(n: DashNode, to: 'active' | 'drain', ask: Ask): void {
  ask({
    title: to === 'drain' ? 'Drain' : 'Activate',
    action: to === 'drain' ? 'drain' : 'activate',
    text:
      to === 'drain'
        ? `Drain ${n.hostname}? Its tasks are stopped and rescheduled on other nodes, and no new task is placed on it.`
        : `Make ${n.hostname} active again? The scheduler may place new tasks on it.`,
    run: async () => void (await post(`/api/nodes/${encodeURIComponent(n.id)}/availability`, { availability: to })),
  });
}

export function NodesView(p: { m: Model; ask: Ask }): ComponentChild {
  const model = useRef(p.m);
  model.current = p.m;
  const cpu = useRef(new Map<string, [number, number][]>());
  const mem = useRef(new Map<string, [number, number][]>());
  const [, setTick] = useState(0);
  useSse('/api/usage?all=1', {
    usage: (raw) => {
      const s = raw as UsageSample;
      const c = new Map<string, number>();
      const mb = new Map<string, number>();
      for (const [id, u] of Object.entries(s.tasks)) {
        const node = model.current.tasks.get(id)?.nodeId;
        if (!node) continue;
        c.set(node, (c.get(node) ?? 0) + (u.cpuPercent ?? 0));
        mb.set(node, (mb.get(node) ?? 0) + u.memoryBytes);
      }
      for (const n of model.current.nodes.values()) {
        pushPoint(cpu.current, n.id, s.at, c.get(n.id) ?? 0);
        pushPoint(mem.current, n.id, s.at, mb.get(n.id) ?? 0);
      }
      setTick((x) => x + 1);
    },
  });
  const nodes = p.m.sortedNodes();
  const series = (m: Map<string, [number, number][]>) => nodes.map((n) => ({ name: n.hostname, points: m.get(n.id) ?? [] }));
  return h(
    'div',
    { class: 'view nodes', 'data-view': 'nodes' },
    h(
      'table',
      null,
      h('thead', null, h('tr', null, ...['Hostname', 'Role', 'State', 'Availability', 'Address', 'Resources', 'Labels', ''].map((c) => h('th', null, c)))),
      h(
        'tbody',
        null,
        ...nodes.map((n) =>
          h(
            'tr',
            { 'data-node': n.hostname, 'data-state': n.state, 'data-availability': n.availability },
            h('td', null, n.manager?.leader ? '★ ' : n.role === 'manager' ? '◆ ' : '', n.hostname),
            h('td', null, n.role, n.manager ? ` (${n.manager.reachability})` : ''),
            h('td', null, badge(n.state), n.message ? h('div', { class: 'muted small' }, n.message) : null),
            h('td', null, badge(n.availability)),
            h('td', null, n.addr),
            h('td', null, `${(n.nanoCpus / 1e9).toFixed(1)} CPU · ${bytes(n.memoryBytes)}`),
            h(
              'td',
              { class: 'labels' },
              Object.keys(n.labels).length === 0 ? h('span', { class: 'muted' }, '–') : Object.entries(n.labels).map(([k, v]) => h('code', null, `${k}=${v}`)),
            ),
            h(
              'td',
              null,
              n.availability === 'active'
                ? h('button', { 'data-action': 'drain', onClick: () => availabilityAction(n, 'drain', p.ask) }, 'Drain')
                : h('button', { 'data-action': 'activate', onClick: () => availabilityAction(n, 'active', p.ask) }, 'Activate'),
            ),
          ),
        ),
      ),
    ),
    h(
      'section',
      { class: 'charts' },
      h(Chart, { title: 'CPU by node (sum of its tasks)', id: 'node-cpu', series: series(cpu.current), format: (v) => `${v.toFixed(1)} %` }),
      h(Chart, { title: 'Memory by node (sum of its tasks)', id: 'node-memory', series: series(mem.current), format: bytes }),
    ),
  );
}
