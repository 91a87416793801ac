// VIP load balancer programming cost (overlay-net/lb.ts), in a scratch network namespace:
//  - full load: 1,000 services × 3 backends from nothing, one `nft -f` transaction (view → kernel, and the
//    nft run alone);
//  - one backend change: a backend of one service stops or starts, incremental update (view → kernel, and
//    the JavaScript part alone: table model + plan), through the namespace's kept `nft -i` session (the
//    applier's default) and, for comparison, with one `nft` process per change;
//  - compaction of the dead rules left by 20 changes, and verify() (list + parse + compare) of the table.
// Targets: full load ≤ 1 s, one change ≤ 10 ms. `node --import tsx bench/overlay-lb.ts` prints one line per
// figure; benchLb() returns them for the overlay benchmark.
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { LbProgrammer, lbTable, renderLbRuleset } from '../overlay-net/lb.ts';
import { NftApplier, planTableChanges, shareUnchanged } from '../overlay-net/nft.ts';
import type { NetView } from '../api/netview.ts';
import { sweepStale } from '../test/net/netlab.ts';
import { summarize } from './stats.ts';

export interface BenchLbOptions {
  services?: number;
  backends?: number;
  /** Repetitions of the full load (default 15). */
  fullReps?: number;
  /** Backend changes measured (default 200). */
  changes?: number;
}

function bigView(services: number, backends: number): NetView {
  const v: NetView = {
    nodeId: 'bench',
    vtep: '192.0.2.1',
    networks: [{ id: 'n1', name: 'bench', vni: 4097, subnet: '10.0.0.0/8', gateway: '10.0.0.1', internal: false, attachable: true, ingress: false }],
    endpoints: [],
    services: [],
  };
  for (let i = 0; i < services; i++) {
    const id = `svc${i}`;
    v.services.push({
      id,
      name: id,
      endpointMode: 'vip',
      vips: [{ networkId: 'n1', ip: `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}` }],
      ports: [],
      aliases: [],
    });
    for (let j = 0; j < backends; j++) {
      const ip = `10.${110 + j}.${(i >> 8) & 255}.${i & 255}`;
      v.endpoints.push({
        networkId: 'n1',
        taskId: `${id}_${j}`,
        serviceId: id,
        serviceName: id,
        taskName: `${id}.${j + 1}.${id}_${j}`,
        ip,
        mac: '',
        nodeId: 'bench',
        vtep: '192.0.2.1',
        aliases: [],
        running: true,
      });
    }
  }
  return v;
}

const ms = (x: number) => `${x.toFixed(2)} ms`;
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));

export async function benchLb(opts: BenchLbOptions = {}): Promise<Record<string, string>> {
  const services = opts.services ?? 1000;
  const backends = opts.backends ?? 3;
  const fullReps = opts.fullReps ?? 15;
  const changes = opts.changes ?? 200;
  sweepStale();
  const name = `shoal-nft-${process.pid}-bench`;
  spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  const add = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  if (add.status !== 0) throw new Error(`ip netns add ${name}: ${add.stderr}`);
  const ns = `/run/netns/${name}`;
  const applier = new NftApplier();
  const out: Record<string, string> = {};
  const label = `${services} services × ${backends} backends`;
  try {
    const view = bigView(services, backends);
    const nets = ['n1'];

    // Full loads: a fresh programmer each time (the table is replaced atomically).
    const full: number[] = [];
    const fullNft: number[] = [];
    const script = renderLbRuleset(view, nets);
    for (let r = 0; r < fullReps; r++) {
      const prog = new LbProgrammer({ netns: ns, networkIds: nets, applier, compactAfterMs: 0 });
      const t0 = performance.now();
      const kind = await prog.update(view);
      full.push(performance.now() - t0);
      if (kind !== 'full') throw new Error(`expected a full load, got ${kind}`);
      await sleep(30);
      const t1 = performance.now();
      await applier.apply(ns, script);
      fullNft.push(performance.now() - t1);
      await sleep(30); // replacing a table leaves RCU work that the next nft run would wait for
    }

    // One backend change at a time, incremental.
    const prog = new LbProgrammer({ netns: ns, networkIds: nets, applier, compactAfterMs: 0 });
    await prog.update(view);
    const one: number[] = [];
    const js: number[] = [];
    const compactions: number[] = [];
    // The JavaScript part alone (model of the whole table + plan), in a loop of its own.
    let current = lbTable(view, nets);
    for (let c = 0; c < changes; c++) {
      const e = view.endpoints[(c * 7919) % view.endpoints.length]!;
      e.running = !e.running;
      const t0 = performance.now();
      const want = shareUnchanged(current, lbTable(view, nets));
      const plan = planTableChanges(current, want);
      if (c >= 20) js.push(performance.now() - t0); // the first ones warm the JIT up
      if (!plan || plan.script === '') throw new Error('no incremental plan');
      current = want;
    }
    for (let c = changes - 1; c >= 0; c--) {
      const e = view.endpoints[(c * 7919) % view.endpoints.length]!;
      e.running = !e.running;
    }
    for (let c = 0; c < changes; c++) {
      const e = view.endpoints[(c * 7919) % view.endpoints.length]!;
      e.running = !e.running;
      const t1 = performance.now();
      const kind = await prog.update(view);
      one.push(performance.now() - t1);
      if (kind !== 'incremental') throw new Error(`expected an incremental update, got ${kind}`);
      if ((c + 1) % 20 === 0) {
        // Compaction normally runs once changes pause (1 s after the last one); here every 20 changes.
        const t2 = performance.now();
        await prog.compact();
        compactions.push(performance.now() - t2);
      }
    }
    const verifies: number[] = [];
    for (let r = 0; r < 5; r++) {
      const t0 = performance.now();
      const v = await prog.verify();
      verifies.push(performance.now() - t0);
      if (!v.ok) throw new Error(`verify found a difference: ${v.reason}`);
    }
    prog.dispose();
    // The same without the kept `nft -i` session: one `nsenter nft -f -` per change.
    const spawnApplier = new NftApplier({ keepAliveMs: 0 });
    const cold = new LbProgrammer({ netns: ns, networkIds: nets, applier: spawnApplier, compactAfterMs: 0 });
    await cold.update(view); // a full load (this programmer knows nothing yet)
    const spawned: number[] = [];
    for (let c = 0; c < Math.min(50, changes); c++) {
      const e = view.endpoints[(c * 104729 + 13) % view.endpoints.length]!;
      e.running = !e.running;
      const t0 = performance.now();
      await cold.update(view);
      spawned.push(performance.now() - t0);
    }
    cold.dispose();

    const f = summarize(full);
    const fn = summarize(fullNft);
    const o = summarize(one);
    const j = summarize(js);
    const k = summarize(compactions);
    const vf = summarize(verifies);
    out[`lb full load, ${label}, view → kernel (n=${f.n})`] = `p50 ${ms(f.p50)}, p99 ${ms(f.p99)}`;
    out[`lb full load, ${label}, nft -f alone`] = `p50 ${ms(fn.p50)}, p99 ${ms(fn.p99)}`;
    out[`lb full load target ≤ 1000 ms`] = f.p99 <= 1000 ? 'met' : 'MISSED';
    out[`lb one backend change, incremental, view → kernel, kept nft session (n=${o.n})`] = `p50 ${ms(o.p50)}, p99 ${ms(o.p99)}`;
    out[`lb one backend change, JavaScript part (model + plan) (n=${j.n})`] = `p50 ${ms(j.p50)}, p99 ${ms(j.p99)}`;
    out[`lb one backend change target ≤ 10 ms`] = o.p50 <= 10 ? (o.p99 <= 10 ? 'met (p50 and p99)' : 'met at p50, not at p99') : 'MISSED';
    const sp = summarize(spawned);
    out[`lb one backend change, incremental, one nft process per change (n=${sp.n})`] = `p50 ${ms(sp.p50)}, p99 ${ms(sp.p99)}`;
    out[`lb compaction after 20 changes (n=${k.n})`] = `p50 ${ms(k.p50)}, p99 ${ms(k.p99)}`;
    out[`lb verify (list + parse + compare), ${label}`] = `p50 ${ms(vf.p50)}, p99 ${ms(vf.p99)}`;
    return out;
  } finally {
    applier.close();
    spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await benchLb();
  for (const [k, v] of Object.entries(r)) console.log(`${k}: ${v}`);
}
