// One service: its settings and actions, its tasks (current and history, as `service ps -a`), its
// history in the events feed, live logs (GET /api/logs: the leader's merged `service logs -f`), and CPU
// and memory charts summed over its tasks (GET /api/usage: the usage nodes report every 5 s).
import { type ComponentChild, h } from 'preact';
import { useRef, useState } from 'preact/hooks';
import { useSse } from './client.ts';
import { EventRow } from './events.ts';
import { ago, bytes, type Model, taskName } from './model.ts';
import type { LogLineOut, UsageSample } from './protocol.ts';
import { type Ask, ports, replicas, serviceActions, updateProgress } from './services.ts';
import { Chart, badge, pushPoint } from './ui.ts';

/** Log lines the page keeps (older ones scroll away). */
const MAX_LOG_LINES = 500;

function Logs(p: { serviceId: string }): ComponentChild {
  const lines = useRef<LogLineOut[]>([]);
  const [, setTick] = useState(0);
  const [status, setStatus] = useState('connecting…');
  useSse(`/api/logs?service=${encodeURIComponent(p.serviceId)}`, {
    line: (l) => {
      lines.current.push(l as LogLineOut);
      if (lines.current.length > MAX_LOG_LINES) lines.current.splice(0, lines.current.length - MAX_LOG_LINES);
      setTick((x) => x + 1);
      setStatus('following');
    },
    warning: (w) => setStatus(`warning: ${(w as { message: string }).message}`),
    end: (e) => setStatus(`ended: ${(e as { message: string }).message}`),
  });
  return h(
    'section',
    { class: 'logs' },
    h('h3', null, 'Logs ', h('span', { class: 'muted' }, status)),
    h(
      'pre',
      { class: 'log', 'data-lines': lines.current.length },
      lines.current.length === 0 ? h('span', { class: 'muted' }, 'no log lines yet') : null,
      ...lines.current.map((l) => h('div', { class: l.stream === 'stderr' ? 'stderr' : '' }, h('span', { class: 'who' }, `${l.task}@${l.node} `), l.line)),
    ),
  );
}

function Usage(p: { scope: string; taskIds: (s: UsageSample) => string[]; title: string }): ComponentChild {
  const cpu = useRef(new Map<string, [number, number][]>());
  const mem = useRef(new Map<string, [number, number][]>());
  const [, setTick] = useState(0);
  useSse(`/api/usage?${p.scope}`, {
    usage: (raw) => {
      const s = raw as UsageSample;
      let c = 0;
      let mb = 0;
      for (const id of p.taskIds(s)) {
        const u = s.tasks[id];
        if (!u) continue;
        c += u.cpuPercent ?? 0;
        mb += u.memoryBytes;
      }
      pushPoint(cpu.current, 'cpu', s.at, c);
      pushPoint(mem.current, 'mem', s.at, mb);
      setTick((x) => x + 1);
    },
  });
  return h(
    'section',
    { class: 'charts' },
    h(Chart, { title: `${p.title} CPU`, id: 'cpu', series: [{ name: 'CPU', points: cpu.current.get('cpu') ?? [] }], format: (v) => `${v.toFixed(1)} %` }),
    h(Chart, { title: `${p.title} memory`, id: 'memory', series: [{ name: 'memory', points: mem.current.get('mem') ?? [] }], format: bytes }),
  );
}

export function ServiceView(p: { m: Model; id: string; ask: Ask }): ComponentChild {
  const s = p.m.serviceByRef(p.id);
  if (!s)
    return h('div', { class: 'view', 'data-view': 'service' }, h('p', null, `No service ${p.id} (removed?). `, h('a', { href: '#/services' }, 'All services')));
  const tasks = p.m.tasksOf(s.id);
  const history = p.m.events
    .filter((e) => (e.type === 'service' && e.actor.id === s.id) || (e.type === 'task' && e.actor.name.startsWith(`${s.name}.`)))
    .slice(-30)
    .reverse();
  return h(
    'div',
    { class: 'view service', 'data-view': 'service', 'data-service': s.name },
    h('h2', null, s.name, ' ', serviceActions(s, p.ask)),
    h(
      'dl',
      { class: 'facts' },
      h('dt', null, 'Replicas'),
      h('dd', { class: 'replicas' }, replicas(s)),
      h('dt', null, 'Image'),
      h('dd', null, s.image),
      h('dt', null, 'Mode'),
      h('dd', null, s.mode),
      h('dt', null, 'Ports'),
      h('dd', null, ports(s.ports) || '–'),
      h('dt', null, 'Update'),
      h('dd', null, s.update ? [badge(s.update.state, updateProgress(s, p.m)), ' ', s.update.message] : '–'),
      h('dt', null, 'Changed'),
      h('dd', null, `${ago(s.updatedAt)} (version ${s.version}, spec ${s.specVersion})`),
    ),
    h(Usage, { scope: `service=${encodeURIComponent(s.id)}`, title: 'Service', taskIds: (u) => Object.keys(u.tasks) }),
    h(
      'section',
      null,
      h('h3', null, `Tasks (${tasks.length}, history included)`),
      h(
        'table',
        { class: 'task-table' },
        h('thead', null, h('tr', null, ...['Task', 'Node', 'State', 'Desired', 'Since', 'Image', 'Error'].map((c) => h('th', null, c)))),
        h(
          'tbody',
          null,
          ...tasks.map((t) =>
            h(
              'tr',
              { 'data-task': t.id, 'data-state': t.state },
              h('td', null, taskName(t, p.m.nodes)),
              h('td', null, t.nodeId ? (p.m.nodes.get(t.nodeId)?.hostname ?? t.nodeId.slice(0, 12)) : '–'),
              h('td', null, badge(t.state)),
              h('td', null, t.desiredState),
              h('td', null, ago(t.timestamp)),
              h('td', null, t.image),
              h('td', { class: 'error' }, t.err ?? ''),
            ),
          ),
        ),
      ),
    ),
    h(Logs, { serviceId: s.id }),
    h(
      'section',
      null,
      h('h3', null, 'History'),
      history.length === 0
        ? h('p', { class: 'muted' }, 'No events for this service in the last ten minutes.')
        : h('ul', { class: 'feed' }, ...history.map((e) => h(EventRow, { e }))),
    ),
  );
}
