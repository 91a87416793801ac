// The cluster map, in the spirit of the Swarm visualizer: one column per node (managers first, the
// leader marked ★, managers ◆), its tasks as boxes coloured by state with a stripe in their service's
// colour; a drained, paused, down or disconnected node is greyed and says so in its header. Tasks the
// scheduler has not placed yet sit in an "unassigned" column.
import { type ComponentChild, h } from 'preact';
import { type Model, taskName } from './model.ts';
import type { DashNode, DashTask } from './protocol.ts';
import { badge } from './ui.ts';

/** A stable colour per service (hue from its name), so a service's tasks are recognisable across nodes. */
export function serviceHue(name: string): number {
  let x = 0;
  for (let i = 0; i < name.length; i++) x = (x * 31 + name.charCodeAt(i)) >>> 0;
  return x % 360;
}

function taskBox(t: DashTask, m: Model): ComponentChild {
  return h(
    'a',
    {
      class: 'task',
      href: `#/service/${t.serviceId}`,
      'data-state': t.state,
      'data-service': t.serviceName,
      'data-task': t.id,
      title: `${taskName(t, m.nodes)} ${t.state} (desired ${t.desiredState})${t.err ? `: ${t.err}` : ''}\n${t.image}`,
      style: { borderLeftColor: `hsl(${serviceHue(t.serviceName)} 60% 45%)` },
    },
    h('span', { class: 'name' }, taskName(t, m.nodes)),
    h('span', { class: 'state' }, t.state),
  );
}

function nodeColumn(n: DashNode, tasks: DashTask[], m: Model): ComponentChild {
  const off = n.state !== 'ready' || n.availability !== 'active';
  return h(
    'section',
    {
      class: `node-col${off ? ' off' : ''}`,
      'data-node': n.hostname,
      'data-node-id': n.id,
      'data-state': n.state,
      'data-availability': n.availability,
      'data-role': n.role,
    },
    h(
      'header',
      null,
      h(
        'div',
        { class: 'host' },
        n.manager?.leader
          ? h('span', { class: 'leader', title: 'Raft leader' }, '★ ')
          : n.role === 'manager'
            ? h('span', { class: 'mgr', title: 'manager' }, '◆ ')
            : null,
        n.hostname,
      ),
      h(
        'div',
        { class: 'meta' },
        badge(n.state),
        ' ',
        n.availability !== 'active' ? badge(n.availability) : null,
        ' ',
        h('span', { class: 'count' }, `${tasks.length} tasks`),
      ),
      h('div', { class: 'addr' }, n.role, ' · ', n.addr),
    ),
    h('div', { class: 'tasks' }, ...tasks.map((t) => taskBox(t, m))),
  );
}

export function MapView(p: { m: Model }): ComponentChild {
  const m = p.m;
  const byNode = new Map<string, DashTask[]>();
  const unassigned: DashTask[] = [];
  const current = m.currentTasks();
  for (const t of current) {
    if (!t.nodeId || !m.nodes.has(t.nodeId)) unassigned.push(t);
    else {
      const list = byNode.get(t.nodeId);
      if (list) list.push(t);
      else byNode.set(t.nodeId, [t]);
    }
  }
  const sort = (a: DashTask, b: DashTask) => a.serviceName.localeCompare(b.serviceName) || (a.slot ?? 0) - (b.slot ?? 0);
  const nodes = m.sortedNodes();
  return h(
    'div',
    { class: 'view map', 'data-view': 'map' },
    h('p', { class: 'summary' }, `${nodes.length} nodes · ${m.services.size} services · ${current.length} tasks`),
    h(
      'div',
      { class: 'columns' },
      ...nodes.map((n) => nodeColumn(n, (byNode.get(n.id) ?? []).sort(sort), m)),
      unassigned.length > 0
        ? h(
            'section',
            { class: 'node-col unassigned', 'data-node': '' },
            h('header', null, h('div', { class: 'host' }, 'unassigned'), h('div', { class: 'meta' }, `${unassigned.length} tasks`)),
            h('div', { class: 'tasks' }, ...unassigned.sort(sort).map((t) => taskBox(t, m))),
          )
        : null,
    ),
  );
}
