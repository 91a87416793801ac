// Cluster events on a lab (evlab: 3 managers + 1 worker, test executor): `shoal events --since` shows a
// service's create, scale, image update and removal and its tasks' state changes in log order; `docker
// events` over a docker context (the Docker API on 2376, admin certificate) shows the same service
// changes; after the leader's daemon is killed with SIGKILL, a replay from another manager returns the
// earlier events with the same seq and time, and a leader event for the new term.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { compareSeq, type ClusterEvent } from '../../api/events.ts';
import { saveContext } from '../../client/context.ts';
import { ClusterLab, waitFor } from '../../lab/cluster-lab.ts';
import { cleanupOnExit, runAsync } from '../../lab/lab.ts';

const NAME = 'evlab';
const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const SHOAL = join(REPO, 'bin', 'shoal');
const DOCKER_CTX = 'ev-lab';

interface Run {
  code: number;
  out: string;
  err: string;
}

/** `cmd` with only PATH and `env` in its environment. Not started, killed (timeout) or signalled: code 1. */
async function run(cmd: string, args: string[], env: Record<string, string>, timeoutMs = 180_000): Promise<Run> {
  const r = await runAsync(cmd, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, timeoutMs });
  return { code: r.code ?? 1, out: r.stdout, err: r.error ? `${r.stderr}${r.error.message}` : r.stderr };
}

const skip = process.getuid?.() !== 0 ? 'labs need root' : false;

describe('cluster events on a lab', { skip, concurrency: false }, () => {
  let c: ClusterLab | undefined;
  let unhook: () => void = () => {};
  const tmp = mkdtempSync(join(tmpdir(), 'shoal-evlab-'));
  const env = { HOME: tmp, DOCKER_CONFIG: join(tmp, 'docker-config') };
  let since = '';
  /** What the first replay returned (from the first manager of the context). */
  let before1: ClusterEvent[] = [];

  const shoal = (args: string[], ctx = c!.contextPath) => run(SHOAL, ['--context', ctx, ...args], env);
  const ok = async (args: string[], ctx?: string): Promise<string> => {
    const r = await shoal(args, ctx);
    assert.equal(r.code, 0, `shoal ${args.join(' ')}: ${r.err}${r.out}`);
    return r.out;
  };
  const replay = async (filters: string[], ctx?: string): Promise<ClusterEvent[]> => {
    const until = String(Date.now() / 1000 + 1);
    const out = await ok(['events', '--since', since, '--until', until, ...filters.flatMap((f) => ['--filter', f]), '--format', 'json'], ctx);
    return out
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as ClusterEvent);
  };

  before(async () => {
    unhook = cleanupOnExit(NAME);
    c = await ClusterLab.up({ name: NAME, managers: 3, workers: 1 });
    await c.waitReady(4, 120_000);
    since = new Date(Date.now() - 1000).toISOString();
  });

  after(async () => {
    await c?.down();
    unhook();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('shoal events --since shows create, scale, image update, remove and task states in order', async () => {
    await ok(['service', 'create', '--name', 'evweb', '--replicas', '2', 'busybox:1.36']);
    await ok(['service', 'scale', 'evweb=4']);
    await ok(['service', 'update', '--image', 'busybox:1.37', 'evweb']);
    await ok(['service', 'rm', 'evweb']);
    // The removal's task events come after the service is gone: wait for the last task's removal.
    let events: ClusterEvent[] = [];
    await waitFor(
      async () => {
        events = await replay(['name=evweb']);
        return events.some((e) => e.type === 'service' && e.action === 'remove');
      },
      60_000,
      'evweb removed in the events',
      500,
    );
    for (let i = 1; i < events.length; i++) assert.ok(compareSeq(events[i - 1]!.seq, events[i]!.seq) < 0, `seq order at ${i}`);
    const svc = events.filter((e) => e.type === 'service').map((e) => `${e.action} ${JSON.stringify(e.actor.attributes)}`);
    assert.match(svc[0]!, /^create .*"replicas":"2"/);
    assert.ok(
      svc.some((s) => /^update .*"replicas.old":"2","replicas.new":"4"/.test(s)),
      svc.join('\n'),
    );
    assert.ok(
      svc.some((s) => /^update .*"image.old":"busybox:1.36[^"]*","image.new":"busybox:1.37/.test(s)),
      svc.join('\n'),
    );
    assert.match(svc[svc.length - 1]!, /^remove /);
    // Every task of the first two slots goes pending → assigned → … → running, in that order (created
    // pending: a service with no overlay network and no published port has nothing to allocate).
    const slot1 = events.filter((e) => e.type === 'task' && e.actor.attributes.slot === '1');
    const firstTask = slot1[0]!.actor.id;
    const states = slot1.filter((e) => e.actor.id === firstTask).map((e) => e.actor.attributes['state.new'] ?? e.action);
    assert.deepEqual(states.slice(0, 3), ['pending', 'assigned', states[2]], states.join(' '));
    assert.ok(states.includes('running'), states.join(' '));
    assert.ok(
      events.some((e) => e.type === 'task' && e.actor.attributes.slot === '4'),
      'the scaled-out slots have tasks',
    );
    // The task events name their node.
    assert.ok(events.some((e) => e.type === 'task' && (e.actor.attributes['node.name'] ?? '').startsWith('h')));
    before1 = await replay([]);
  });

  it('docker events over the docker context shows the same service changes', async (t) => {
    if ((await run('docker', ['--version'], env)).code !== 0) {
      t.skip('no docker CLI on PATH');
      return;
    }
    const certs = join(tmp, 'certs');
    const r = await run(SHOAL, ['context', 'docker', '--context', c!.contextPath, '--dir', certs, '--name', DOCKER_CTX], env);
    assert.equal(r.code, 0, r.err);
    const until = String(Math.ceil(Date.now() / 1000) + 1);
    const d = await run(
      'docker',
      [
        '--context',
        DOCKER_CTX,
        'events',
        '--since',
        String(Math.floor(Date.parse(since) / 1000)),
        '--until',
        until,
        '--filter',
        'service=evweb',
        '--format',
        '{{.Type}} {{.Action}} {{index .Actor.Attributes "name"}} {{index .Actor.Attributes "replicas.new"}}',
      ],
      env,
    );
    assert.equal(d.code, 0, d.err);
    const dockerLines = d.out
      .trim()
      .split('\n')
      .map((l) => l.trim());
    const ours = before1
      .filter((e) => e.type === 'service' && e.actor.name === 'evweb')
      // Docker reports spec changes only, not the rolling update's state moves.
      .filter((e) => e.action !== 'update' || ['image.new', 'replicas.new', 'changed', 'mode.new'].some((k) => k in e.actor.attributes))
      .map((e) => `${e.type} ${e.action} ${e.actor.name} ${e.actor.attributes['replicas.new'] ?? ''}`.trim());
    assert.deepEqual(dockerLines, ours);
    assert.deepEqual(
      dockerLines.map((l) => l.split(' ')[1]),
      ['create', 'update', 'update', 'remove'],
    );
  });

  it('after the leader is killed, another manager replays the same events and a leader event', async () => {
    const info = (await c!.control('GET', '/v1/info')) as { leader: string; term: number };
    const oldLeader = info.leader;
    const leaderHost = [...c!.daemons.entries()].find(([, d]) => d.nodeId === oldLeader)![0];
    c!.killDaemon(leaderHost, 'SIGKILL');
    // A context that only names the surviving managers.
    const deadAddr = `${c!.host(leaderHost).ip}:2377`;
    const others = join(tmp, 'others.json');
    saveContext(others, { ...c!.ctx, managers: c!.ctx.managers.filter((m) => m !== deadAddr) });
    let after: ClusterEvent[] = [];
    let leader: ClusterEvent | undefined;
    await waitFor(
      async () => {
        after = await replay([], others).catch(() => []);
        leader = after.find((e) => e.type === 'manager' && e.action === 'leader' && Number(e.actor.attributes.term) > info.term);
        return leader !== undefined;
      },
      120_000,
      'a leader event for the new term on another manager',
      1000,
    );
    assert.notEqual(leader!.actor.attributes.leader, oldLeader);
    assert.notEqual(leader!.actor.attributes.leader, 'unknown');
    // The events both managers hold from before the kill are the same, seq for seq, time for time.
    const lastBefore = before1[before1.length - 1]!.seq;
    const key = (e: ClusterEvent) => JSON.stringify([e.seq, e.time, e.type, e.action, e.actor.id]);
    const earlier = after.filter((e) => compareSeq(e.seq, lastBefore) <= 0);
    assert.deepEqual(earlier.map(key), before1.map(key));
    assert.ok(compareSeq(leader!.seq, lastBefore) > 0, 'the leader event follows the earlier events');
  });
});
