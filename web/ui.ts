// Small building blocks shared by the views: state badges, the confirm dialog every action goes
// through, and an SVG line chart (no chart library: two series of at most a few hundred points).
import { type ComponentChild, type ComponentChildren, h } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

/** A coloured label for a task or node state (colours in style.css, by `data-state`). */
export function badge(state: string, text = state): ComponentChild {
  return h('span', { class: 'badge', 'data-state': state }, text);
}

/** What an action asks before it runs. `input`: a value the user may edit (replicas, image). */
export interface ConfirmRequest {
  title: string;
  text: string;
  action: string;
  input?: { label: string; value: string; type: 'number' | 'text' };
  /** Runs the action; a rejection's message is shown in the dialog, which stays open. */
  run: (value: string) => Promise<void>;
}

export function ConfirmDialog(p: { req: ConfirmRequest; close: () => void }): ComponentChild {
  const [value, setValue] = useState(p.req.input?.value ?? '');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => {
    input.current?.focus();
    input.current?.select();
  }, []);
  const confirm = async () => {
    setBusy(true);
    setError('');
    try {
      await p.req.run(value);
      p.close();
    } catch (e) {
      setError((e as Error).message);
      setBusy(false);
    }
  };
  return h(
    'div',
    { class: 'backdrop', onClick: (e: MouseEvent) => e.target === e.currentTarget && !busy && p.close() },
    h(
      'div',
      { class: 'dialog', role: 'dialog', 'aria-modal': 'true', 'data-dialog': p.req.action },
      h('h2', null, p.req.title),
      h('p', null, p.req.text),
      p.req.input
        ? h(
            'label',
            null,
            p.req.input.label,
            h('input', {
              id: 'dialog-input',
              ref: input,
              type: p.req.input.type,
              value,
              min: p.req.input.type === 'number' ? 0 : undefined,
              onInput: (e: Event) => setValue((e.target as HTMLInputElement).value),
              onKeyDown: (e: KeyboardEvent) => e.key === 'Enter' && !busy && void confirm(),
            }),
          )
        : null,
      error ? h('p', { class: 'error', role: 'alert' }, error) : null,
      h(
        'div',
        { class: 'buttons' },
        h('button', { class: 'cancel', disabled: busy, onClick: p.close }, 'Cancel'),
        h('button', { class: 'confirm', disabled: busy, onClick: () => void confirm() }, busy ? 'Working…' : p.req.title),
      ),
    ),
  );
}

export interface Series {
  name: string;
  /** [time ms, value] pairs, oldest first. */
  points: [number, number][];
}

/** A line chart of one or more series over the same time axis; `unit` formats the axis label. */
export function Chart(p: { title: string; series: Series[]; format: (v: number) => string; id?: string }): ComponentChild {
  const W = 480;
  const H = 140;
  const pad = { l: 56, r: 8, t: 8, b: 18 };
  const all = p.series.flatMap((s) => s.points);
  const children: ComponentChildren[] = [];
  if (all.length === 0) {
    children.push(h('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'muted' }, 'waiting for the first usage report…'));
  } else {
    const t0 = Math.min(...all.map((x) => x[0]));
    const t1 = Math.max(...all.map((x) => x[0]), t0 + 1);
    const vmax = Math.max(...all.map((x) => x[1]), 1e-9) * 1.1;
    const x = (t: number) => pad.l + ((t - t0) / (t1 - t0)) * (W - pad.l - pad.r);
    const y = (v: number) => H - pad.b - (v / vmax) * (H - pad.t - pad.b);
    children.push(
      h('line', { x1: pad.l, y1: H - pad.b, x2: W - pad.r, y2: H - pad.b, class: 'axis' }),
      h('text', { x: pad.l - 4, y: pad.t + 8, 'text-anchor': 'end', class: 'tick' }, p.format(vmax)),
      h('text', { x: pad.l - 4, y: H - pad.b, 'text-anchor': 'end', class: 'tick' }, p.format(0)),
      h('text', { x: W - pad.r, y: H - 4, 'text-anchor': 'end', class: 'tick' }, `${Math.round((t1 - t0) / 1000)} s`),
    );
    p.series.forEach((s, i) => {
      if (s.points.length === 0) return;
      const d = s.points.map(([t, v], j) => `${j === 0 ? 'M' : 'L'}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
      children.push(h('path', { d, class: `line s${i % 6}` }));
    });
  }
  const last = p.series.map((s) => {
    const v = s.points[s.points.length - 1];
    return h('span', { class: `legend s${p.series.indexOf(s) % 6}` }, `${s.name}: ${v ? p.format(v[1]) : '–'}`);
  });
  return h(
    'figure',
    { class: 'chart', 'data-chart': p.id ?? p.title },
    h('figcaption', null, p.title, ' ', ...last),
    h('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': p.title }, ...children),
  );
}

/** Keeps the last `max` samples of a time series per key, for the charts. */
export function pushPoint(map: Map<string, [number, number][]>, key: string, t: number, v: number, max = 120): void {
  const a = map.get(key) ?? [];
  a.push([t, v]);
  if (a.length > max) a.splice(0, a.length - max);
  map.set(key, a);
}
