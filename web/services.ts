// The services list (`service ls` with update progress) and the actions on a service: scale, update the
// image, roll back. Every action goes through the confirm dialog; the table itself changes only when
// the cluster's event comes back through the server, so what it shows is what the store holds.
import { type ComponentChild, h } from 'preact';
import { post } from './client.ts';
import type { Model } from './model.ts';
import type { DashPort, DashService } from './protocol.ts';
import { badge, type ConfirmRequest } from './ui.ts';

export type Ask = (r: ConfirmRequest) => void;

export function ports(ps: DashPort[]): string {
  return ps.map((p) => `${p.publishedPort ?? '*'}→${p.targetPort}/${p.protocol}${p.publishMode === 'host' ? ' (host)' : ''}`).join(', ');
}

export function replicas(s: DashService): string {
  return s.desired === null ? `${s.running} (${s.mode})` : `${s.running}/${s.desired}`;
}

/** "updating 2/5" style progress of a rolling update: tasks of the current spec version that run. */
export function updateProgress(s: DashService, m: Model): string {
  if (!s.update) return '';
  const cur = m.tasksOf(s.id).filter((t) => t.specVersion === s.specVersion && t.state === 'running' && t.desiredState === 'running').length;
  const busy = s.update.state === 'updating' || s.update.state === 'rollback_started';
  return busy && s.desired !== null ? `${s.update.state.replace('_', ' ')} ${cur}/${s.desired}` : s.update.state.replace('_', ' ');
}

const api = (s: DashService, verb: string) => `/api/services/${encodeURIComponent(s.id)}/${verb}`;

export function scaleAction(s: DashService, ask: Ask): void {
  ask({
    title: 'Scale',
    action: 'scale',
    text: `Set the number of replicas of ${s.name} (now ${s.desired ?? '–'}).`,
    input: { label: 'Replicas', value: String(s.desired ?? 1), type: 'number' },
    run: async (v) => {
      if (!/^\d+$/.test(v.trim())) throw new Error('replicas must be a non-negative whole number');
      await post(api(s, 'scale'), { replicas: Number(v) });
    },
  });
}

export function imageAction(s: DashService, ask: Ask): void {
  ask({
    title: 'Update image',
    action: 'image',
    text: `Roll ${s.name}'s tasks over to another image (its update policy applies).`,
    input: { label: 'Image', value: s.image, type: 'text' },
    run: async (v) => void (await post(api(s, 'image'), { image: v.trim() })),
  });
}

export function rollbackAction(s: DashService, ask: Ask): void {
  ask({
    title: 'Roll back',
    action: 'rollback',
    text: `Return ${s.name} to its previous spec? Its tasks are replaced by its rollback policy.`,
    run: async () => void (await post(api(s, 'rollback'), {})),
  });
}

export function serviceActions(s: DashService, ask: Ask): ComponentChild {
  return h(
    'span',
    { class: 'actions' },
    s.desired !== null ? h('button', { 'data-action': 'scale', onClick: () => scaleAction(s, ask) }, 'Scale') : null,
    h('button', { 'data-action': 'image', onClick: () => imageAction(s, ask) }, 'Image'),
    h('button', { 'data-action': 'rollback', disabled: !s.hasPrevious, onClick: () => rollbackAction(s, ask) }, 'Rollback'),
  );
}

export function ServicesView(p: { m: Model; ask: Ask }): ComponentChild {
  const rows = p.m.sortedServices();
  return h(
    'div',
    { class: 'view services', 'data-view': 'services' },
    rows.length === 0
      ? h('p', { class: 'muted' }, 'No services. Create one with `shoal service create`.')
      : h(
          'table',
          null,
          h('thead', null, h('tr', null, ...['Name', 'Mode', 'Replicas', 'Image', 'Ports', 'Update', ''].map((c) => h('th', null, c)))),
          h(
            'tbody',
            null,
            ...rows.map((s) =>
              h(
                'tr',
                { 'data-service': s.name, 'data-service-id': s.id },
                h('td', null, h('a', { href: `#/service/${s.id}` }, s.name)),
                h('td', null, s.mode),
                h('td', { class: `replicas${s.desired !== null && s.running < s.desired ? ' short' : ''}` }, replicas(s)),
                h('td', { class: 'image' }, s.image),
                h('td', null, ports(s.ports)),
                h('td', null, s.update ? badge(s.update.state, updateProgress(s, p.m)) : ''),
                h('td', null, serviceActions(s, p.ask)),
              ),
            ),
          ),
        ),
  );
}
