// The node's side of overlay networking, tying the pieces together (see docs/design/networking.md):
//
//   NetView from the managers ──► DataPlane (namespaces, bridges, VXLAN, static FDB/ARP peers)
//                              ├─► MeshProgrammer (routing mesh: node + ingress nft tables)
//                              ├─► HostPortProgrammer (host-mode published ports)
//                              ├─► GuardProgrammer (confinement: what tasks may reach, anti-spoofing)
//                              ├─► LbProgrammer per task (VIP load balancing inside the task's namespace)
//                              └─► DnsServer (service discovery at the gateway bridge address)
//
// It is also the engine's NetworkHook: before a container starts, attach() builds its namespace with one
// interface per network it is attached to and hands the namespace to the shim; detach() removes it.
// Everything is idempotent and re-asserted every few seconds, so a deleted link, FDB entry or nft table
// heals by itself; an agent restart adopts what exists.
import type { TaskAssignment } from '../api/task-status.ts';
import type { NetworkHook, NetworkSetup } from './engine/executor.ts';
import { DataPlane, type ApplyReport } from '../overlay-net/dataplane.ts';
import { DnsServer } from '../overlay-net/dns.ts';
import { viewBeforeApply } from '../api/netview.ts';
import { clusterAddrs, GuardProgrammer } from '../overlay-net/filter.ts';
import { LbProgrammer, vipNetworks } from '../overlay-net/lb.ts';
import { HostPortProgrammer, MeshProgrammer } from '../overlay-net/mesh.ts';
import type { StaleFlowOptions } from '../overlay-net/stale-flows.ts';
import { NODE_LOCAL, type NetView } from '../api/netview.ts';

export interface NodeNetworkOptions {
  /** Prefix of every namespace/link this node creates (a lab host passes its own). */
  prefix: string;
  log?: (l: string) => void;
  /**
   * How often everything is re-asserted after a change or a repair (default 5 s). While rounds find
   * nothing to repair the interval doubles up to healIdleMaxMs (default 20 s): each round spawns nft and
   * nsenter several times, the bulk of an idle node's CPU, to guard against outside tampering.
   */
  healEveryMs?: number;
  healIdleMaxMs?: number;
  /** How long attach() waits for the managers' view to list a task's networks (default 15 s). */
  attachWaitMs?: number;
  /** Observer (metrics): how long applying one view to the kernel took, and whether it succeeded. */
  onProgram?: (seconds: number, ok: boolean) => void;
  /** Observer (metrics): connections to dropped backends deleted (overlay-net/stale-flows.ts). */
  onStaleFlows?: (deleted: number) => void;
}

interface TaskNet {
  gwIp: string;
  networkIds: string[];
  serviceId: string;
  /** VIP load balancing in the task's namespace; null when the task is on no network with VIPs. */
  lb: LbProgrammer | null;
  /** The LB update in flight (each task's table is updated on its own, never blocking the node's queue). */
  lbRunning: Promise<void> | null;
  /** A newer view arrived while updating: update again when done. */
  lbDirty: boolean;
}

export class NodeNetwork implements NetworkHook {
  readonly dp: DataPlane;
  private view: NetView | null = null;
  /** The view the data plane applied last (its endpoints have ARP/FDB entries on this node). */
  private applied: NetView | null = null;
  private tasks = new Map<string, TaskNet>();
  private byGw = new Map<string, string>();
  private mesh: MeshProgrammer | null = null;
  private hostPorts: HostPortProgrammer;
  private guard: GuardProgrammer;
  private dns: DnsServer | null = null;
  private chain: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout;
  private viewWaiters: (() => void)[] = [];
  private closed = false;
  private readonly log: (l: string) => void;

  constructor(private readonly o: NodeNetworkOptions) {
    this.log = o.log ?? (() => {});
    this.dp = new DataPlane({ prefix: o.prefix, log: (l) => this.log(l) });
    this.hostPorts = new HostPortProgrammer({ netns: null, staleFlows: this.staleFlows('host ports') });
    this.guard = new GuardProgrammer({ netns: null, onFallback: (e) => this.log(`guard: ${e.message}`) });
    try {
      const r = this.dp.adopt();
      if (r.networks.length || r.tasks.length) this.log(`network: adopted ${r.networks.length} network(s) and ${r.tasks.length} task namespace(s)`);
      // Containers outlive the agent, and so do their namespaces: take their DNS identity, VIP tables and
      // host ports back so they keep working after a daemon restart.
      for (const id of this.dp.taskIds()) {
        const t = this.dp.task(id);
        if (!t) continue;
        const networkIds = t.interfaces.map((i) => i.networkId);
        const lb = this.lbFor(id, t.netnsPath, networkIds);
        // serviceId '' : host ports fall back to the service the view lists for this task's endpoints
        this.tasks.set(id, { gwIp: t.gwIp, networkIds, serviceId: '', lb, lbRunning: null, lbDirty: false });
        this.byGw.set(t.gwIp, id);
      }
    } catch (e) {
      this.log(`network: adopt failed: ${(e as Error).message}`);
    }
    this.healBase = o.healEveryMs ?? 5_000;
    this.healMax = Math.max(this.healBase, o.healIdleMaxMs ?? 20_000);
    this.healDelay = this.healBase;
    this.timer = this.scheduleHeal();
  }

  private healBase = 5_000;
  private healMax = 20_000;
  private healDelay = 5_000;
  /** A view arrived since the last heal round: the next interval is the base one again. */
  private changedSinceHeal = false;

  /** One heal round after the current interval, then the next: the base after a repair or a change, doubling while quiet. */
  private scheduleHeal(): NodeJS.Timeout {
    const t = setTimeout(() => {
      void this.serial(async () => {
        const repaired = await this.heal();
        this.healDelay = repaired || this.changedSinceHeal ? this.healBase : Math.min(this.healMax, this.healDelay * 2);
        this.changedSinceHeal = false;
      }).finally(() => {
        if (!this.closed) this.timer = this.scheduleHeal();
      });
    }, this.healDelay);
    t.unref();
    return t;
  }

  /** Runs network changes one at a time, in order; an error is logged, never thrown to the caller. */
  private serial(fn: () => Promise<void>): Promise<void> {
    const p = this.chain.then(fn).catch((e) => this.log(`network: ${(e as Error).message}`));
    this.chain = p;
    return p;
  }

  /**
   * The managers sent a new view. Settles once this node's load balancers (the routing mesh and every
   * task's VIP table) no longer send traffic to an endpoint the view withdrew: the agent then tells the
   * leader, which holds the stop of a task until every node has (manager/dispatcher/drain.ts).
   */
  setView(view: NetView): Promise<void> {
    this.view = view;
    this.changedSinceHeal = true;
    for (const w of this.viewWaiters.splice(0)) w();
    // DNS answers, the mesh and the VIP tables follow the view now, not after the node's queue (a heal
    // round's nft verifies, the attach of a starting task, a slow apply) has drained: under load that
    // took seconds, during which stopped tasks stayed in `tasks.<svc>` and a rolling update's stops
    // waited. Endpoints this node has no ARP/FDB entries for yet wait for the apply (programmable()).
    this.dns?.setView(this.programmable()!);
    const early = this.mesh ? this.programBalancers() : null;
    // Views come in bursts while tasks start and stop: one pass queued at a time converges on the latest.
    if (!this.queuedPass) this.queuedPass = this.convergePass();
    // Before the mesh exists, the pass that makes it is what programs the node.
    return early ?? this.queuedPass.then(() => this.programBalancers());
  }

  /**
   * The latest view as the load balancers may use it: withdrawals at once, a new endpoint only once
   * this node's data path reaches it (the view last applied has it; api/netview.ts viewBeforeApply).
   * DNS answers from it too. Cached per (applied, latest) pair: every task's table loop asks for it.
   */
  private programmable(): NetView | null {
    if (!this.view) return null;
    const c = this.programmableCache;
    if (c && c.view === this.view && c.applied === this.applied) return c.result;
    const result = viewBeforeApply(this.applied, this.view);
    this.programmableCache = { view: this.view, applied: this.applied, result };
    return result;
  }

  private programmableCache: { view: NetView; applied: NetView | null; result: NetView } | null = null;

  /** Brings the mesh and every task's VIP table to programmable(); settles when all have. */
  private async programBalancers(): Promise<void> {
    const mesh = this.kickMesh().catch(() => undefined);
    for (const [id, t] of this.tasks) this.kickLb(id, t);
    await Promise.all([mesh, ...[...this.tasks.values()].map((t) => t.lbRunning)]);
  }

  /**
   * Brings the routing mesh to programmable(), coalescing bursts as kickLb does. Rejects with the
   * mesh's error (the converge pass reports it); a later kick starts again.
   */
  private kickMesh(): Promise<void> {
    if (!this.mesh) return Promise.resolve();
    if (this.meshRunning) {
      this.meshDirty = true;
      return this.meshRunning;
    }
    this.meshRunning = (async () => {
      do {
        this.meshDirty = false;
        const v = this.programmable();
        if (!v || this.closed || !this.mesh) break;
        await this.mesh.update(v);
      } while (this.meshDirty);
    })().finally(() => {
      this.meshRunning = null;
    });
    return this.meshRunning;
  }

  private meshRunning: Promise<void> | null = null;
  private meshDirty = false;

  private convergePass(): Promise<void> {
    return this.serial(() => {
      this.queuedPass = null;
      const observe = this.o.onProgram;
      if (!observe) return this.converge().then(() => undefined);
      const t0 = performance.now();
      return this.converge().then(
        () => observe((performance.now() - t0) / 1000, true),
        (e: unknown) => {
          observe((performance.now() - t0) / 1000, false);
          throw e;
        },
      );
    });
  }

  /** The pass queued to converge on the latest view (not started yet), if any. */
  private queuedPass: Promise<void> | null = null;

  private async converge(): Promise<ApplyReport | null> {
    const view = this.view;
    if (!view || this.closed) return null;
    const report = this.dp.apply(view);
    this.applied = view;
    this.dns?.setView(view);
    // A failure here is logged and retried by the next round; the rest must converge regardless.
    await this.updateGuard(view).catch((e: Error) => this.log(`guard: ${e.message}`));
    await this.ensureDns();
    const ing = this.dp.ingressNetns();
    if (ing && !this.mesh)
      this.mesh = new MeshProgrammer({
        nodeNetns: null,
        ingressNetns: ing,
        onFallback: (e) => this.log(`mesh: ${e.message}`),
        staleFlows: this.staleFlows('mesh'),
      });
    await this.kickMesh();
    await this.hostPorts.update(view, this.gwIps(), this.taskServices());
    for (const [id, t] of this.tasks) this.kickLb(id, t);
    return report;
  }

  /**
   * Brings one task's VIP table to the latest view, coalescing bursts of views. Tables of different
   * tasks are updated independently, so one slow `nft` never holds up the node's other tasks or a
   * container waiting to start.
   */
  private kickLb(id: string, t: TaskNet): void {
    if (!t.lb) return;
    if (t.lbRunning) {
      t.lbDirty = true;
      return;
    }
    t.lbRunning = (async () => {
      do {
        t.lbDirty = false;
        const v = this.programmable();
        if (!v || this.closed || this.tasks.get(id) !== t) break;
        await t.lb?.update(v).catch((e: Error) => this.log(`lb ${id.slice(0, 12)}: ${e.message}`));
      } while (t.lbDirty);
      t.lbRunning = null;
    })();
  }

  /** The confinement tables follow the view (node addresses) and the local tasks' legs. */
  private async updateGuard(view: NetView): Promise<void> {
    const legs = this.dp.guardLegs();
    const names = this.dp.names;
    await this.guard.update({
      node: { gwBridge: names.gwBridge, ingressLink: names.ingressLink, nodeAddrs: clusterAddrs(view) },
      gwLegs: legs.gw,
      netLegs: legs.nets,
    });
  }

  /** Re-asserts everything; true when something had to be repaired. */
  private async heal(): Promise<boolean> {
    if (!this.view || this.closed) return false;
    const applied = await this.converge();
    let repaired = applied !== null && applied.writes + applied.natWrites > 0;
    for (const r of await this.guard.verify()) {
      this.log(`guard: repaired ${r}`);
      repaired = true;
    }
    if (this.mesh) {
      const m = await this.mesh.verify();
      if (!m.node.ok || !m.ingress.ok || !m.forwarding) repaired = true;
    }
    if (!(await this.hostPorts.verify()).ok) repaired = true;
    const lbs = await Promise.all([...this.tasks.values()].filter((t) => t.lb && !t.lbRunning).map((t) => t.lb!.verify().catch(() => null)));
    if (lbs.some((r) => r !== null && !r.ok)) repaired = true;
    return repaired;
  }

  private gwIps(): Map<string, string> {
    return new Map([...this.tasks].map(([id, t]) => [id, t.gwIp]));
  }

  private taskServices(): Map<string, string> {
    return new Map([...this.tasks].filter(([, t]) => t.serviceId !== '').map(([id, t]) => [id, t.serviceId]));
  }

  /** The resolver listens on the gateway bridge's address, which exists once the data plane made it. */
  private async ensureDns(): Promise<void> {
    if (this.dns || this.closed) return;
    const dns = new DnsServer({
      address: NODE_LOCAL.gwBridgeAddr,
      port: 53,
      clientInfo: (src) => {
        const id = this.byGw.get(src);
        const t = id ? this.tasks.get(id) : undefined;
        return t ? { networkIds: t.networkIds, taskId: id! } : undefined;
      },
    });
    try {
      await dns.start();
      this.dns = dns;
      const v = this.programmable();
      if (v) dns.setView(v);
    } catch (e) {
      await dns.close().catch(() => {});
      this.log(`network: DNS resolver not started yet: ${(e as Error).message}`);
    }
  }

  /**
   * The task's VIP table covers its networks except ingress (the routing mesh's network offers neither
   * VIPs nor discovery to tasks, as in Swarm): a task only on ingress needs no table at all — and, with
   * many published tasks, none of them is reprogrammed on every view change.
   */
  private lbFor(taskId: string, netns: string, networkIds: string[]): LbProgrammer | null {
    const ids = this.view ? vipNetworks(this.view, networkIds) : networkIds;
    if (ids.length === 0) return null;
    return new LbProgrammer({
      netns,
      networkIds: ids,
      onFallback: (e) => this.log(`lb ${taskId.slice(0, 12)}: ${e.message}`),
      staleFlows: this.staleFlows(`lb ${taskId.slice(0, 12)}`),
    });
  }

  /** What a table's sweep of connections to dropped backends reports (stale-flows.ts): a log line when it deleted any. */
  private staleFlows(where: string): StaleFlowOptions {
    return {
      onError: (e) => this.log(`${where}: ${e.message}`),
      onSwept: (gone, deleted) => {
        if (deleted === 0) return;
        this.log(`${where}: deleted ${deleted} stale connection(s) to ${gone.join(', ')}, which left the table`);
        this.o.onStaleFlows?.(deleted);
      },
    };
  }

  private waitForView(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.view) return resolve();
      const t = setTimeout(() => reject(new Error('no network view from the managers yet')), this.o.attachWaitMs ?? 15_000);
      this.viewWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private waitForNetworks(ids: string[]): Promise<void> {
    const has = () => ids.every((id) => this.view?.networks.some((n) => n.id === id));
    if (has()) return Promise.resolve();
    const until = Date.now() + (this.o.attachWaitMs ?? 15_000);
    return new Promise((resolve, reject) => {
      const check = () => {
        if (has()) return resolve();
        if (Date.now() > until)
          return reject(new Error(`network(s) ${ids.filter((id) => !this.view?.networks.some((n) => n.id === id)).join(', ')} not known on this node yet`));
        this.viewWaiters.push(check);
        setTimeout(check, 500).unref();
      };
      check();
    });
  }

  // ------------------------------------------------------------------ NetworkHook

  async attach(task: TaskAssignment): Promise<NetworkSetup> {
    // Every task gets its own namespace with a leg on the gateway bridge (egress, DNS, host-mode ports),
    // plus one interface per overlay network it is attached to.
    const atts = (task.networks ?? []).filter((n) => n.addresses.length > 0);
    if (atts.length > 0) await this.waitForNetworks(atts.map((a) => a.networkId));
    else if (!this.view) await this.waitForView();
    let setup: NetworkSetup = {};
    let lbReady: Promise<void> | null = null;
    await this.serial(async () => {
      this.dp.apply(this.view!);
      this.applied = this.view;
      this.dns?.setView(this.view!);
      const r = this.dp.attachTask(
        task.id,
        atts.map((a) => ({ networkId: a.networkId, ip: a.addresses[0]! })),
      );
      const lb = this.lbFor(
        task.id,
        r.netnsPath,
        atts.map((a) => a.networkId),
      );
      const t: TaskNet = { gwIp: r.gwIp, networkIds: atts.map((a) => a.networkId), serviceId: task.serviceId, lb, lbRunning: null, lbDirty: false };
      this.tasks.set(task.id, t);
      // The first table goes in before the container starts (its VIPs work from its first instruction);
      // it is a full load, done outside the node's queue like every other table update.
      this.kickLb(task.id, t);
      lbReady = t.lbRunning;
      this.byGw.set(r.gwIp, task.id);
      // The task's legs are confined before its first instruction runs.
      await this.updateGuard(this.view!);
      await this.ensureDns();
      await this.hostPorts.update(this.view!, this.gwIps(), this.taskServices());
      setup = {
        netnsPath: r.netnsPath,
        resolvConf: r.resolvConf,
        hosts: hostsFile(
          task,
          r.interfaces.map((i) => i.ip.split('/')[0]!),
        ),
      };
    });
    if (!setup.netnsPath) throw new Error(`network setup of task ${task.id} failed (see the daemon log)`);
    await lbReady;
    return setup;
  }

  async detach(taskId: string): Promise<void> {
    await this.serial(async () => {
      const key = this.tasks.has(taskId) ? taskId : taskId.slice(0, 12); // adopted tasks: short ids
      const t = this.tasks.get(key);
      if (t) {
        this.tasks.delete(key);
        this.byGw.delete(t.gwIp);
        await t.lbRunning; // its session must end before the namespace goes
        t.lb?.dispose();
        if (this.view) await this.hostPorts.update(this.view, this.gwIps(), this.taskServices());
      }
      await this.dp.detachTask(taskId);
      if (this.view) await this.updateGuard(this.view).catch((e: Error) => this.log(`guard: ${e.message}`));
    });
  }

  /** Stops the resolver and timers; the data plane stays (containers keep their network). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.chain.catch(() => {});
    await this.dns?.close().catch(() => {});
    this.dns = null;
    for (const t of this.tasks.values()) t.lb?.dispose();
    this.mesh?.dispose();
    this.hostPorts.dispose();
    this.guard.dispose();
  }
}

function hostsFile(task: TaskAssignment, ips: string[]): string {
  const short = task.id.slice(0, 12);
  const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback'];
  for (const ip of ips) lines.push(`${ip}\t${short}`);
  return `${lines.join('\n')}\n`;
}
