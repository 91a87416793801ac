// Service tasks as real containers on lab hosts: daemons run the engine executor; an image built by the
// test (busybox, OCI layout) is loaded on the manager only with `shoal image load`; `service create` pins
// it to its digest, the worker fetches it from the manager over mutual TLS, the tasks become isolated
// containers (own PID namespace, the image as root) and are stopped when the service goes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { localCall } from '../../client/context.ts';
import { baseImage, ociFiles, tarFiles } from '../images/fixtures.ts';
import { ClusterLab, waitFor } from '../../lab/cluster-lab.ts';
import { cleanupOnExit } from '../../lab/lab.ts';

const NAME = `e${process.pid % 10000}`;

function localImages(stateDir: string): { name: string; digest: string }[] {
  const dir = join(stateDir, 'images', 'images');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')));
}
const SHOAL = join(resolve(fileURLToPath(new URL('../..', import.meta.url))), 'bin', 'shoal');

describe('service tasks as real containers on lab hosts', { concurrency: false }, () => {
  let c: ClusterLab;
  let unhook: () => void = () => {};
  const tmp = mkdtempSync(join(tmpdir(), 'shoal-e2e-'));

  before(async () => {
    unhook = cleanupOnExit(NAME);
    c = await ClusterLab.up({ name: NAME, managers: 1, workers: 1, executor: 'engine' });
    const archive = join(tmp, 'base.tar');
    writeFileSync(archive, tarFiles(ociFiles([{ ...baseImage('shoal/busybox:1'), cmd: ['/bin/sh'] }])));
    await localCall(c.stateDir('h1'), 'POST', '/images/load', { path: archive });
  });

  after(async () => {
    await c?.down();
    unhook();
    rmSync(tmp, { recursive: true, force: true });
  });

  const sh = (...args: string[]) =>
    new Promise<{ code: number; out: string; err: string }>((res) => {
      execFile(SHOAL, args, { env: { ...process.env, SHOAL_CONTEXT: c.contextPath }, timeout: 60_000 }, (e, out, err) =>
        res({ code: e ? (typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : 1) : 0, out: String(out), err: String(err) }),
      );
    });

  it('image ls lists the loaded image on the manager, not (yet) on the worker', async () => {
    const r = await sh('image', 'ls', '--state-dir', c.stateDir('h1'));
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /shoal\/busybox:1/);
    const w = await sh('image', 'ls', '--state-dir', c.stateDir('h2'));
    assert.doesNotMatch(w.out, /shoal\/busybox:1/);
  });

  it('a service runs as isolated containers from the image, and stops when removed', async () => {
    const r = await sh('service', 'create', '--name', 'box', '--replicas', '2', 'shoal/busybox:1', 'sh', '-c', 'echo pid=$$; ls /data; sleep 300');
    assert.equal(r.code, 0, r.err + r.out);
    const svc = (await c.control('GET', '/v1/services/box')) as any;
    const digest = localImages(c.stateDir('h1')).find((i) => i.name === 'shoal/busybox:1')!.digest;
    assert.equal(svc.spec.task.image, `shoal/busybox:1@${digest}`, 'the image is pinned to its digest');
    const tasks = (await c.control('GET', '/v1/tasks?service=box')) as any[];
    assert.equal(tasks.filter((t) => t.status.state === 'running').length, 2);
    assert.deepEqual(new Set(tasks.map((t) => t.nodeId)).size, 2, 'one task per node (spread)');
    // the worker fetched the image from the manager: same digest on both nodes
    assert.equal(localImages(c.stateDir('h2')).find((i) => i.digest === digest)?.name, 'shoal/busybox:1');
    // an image in use cannot be removed from a node
    const rmImg = await sh('image', 'rm', '--state-dir', c.stateDir('h2'), 'shoal/busybox:1');
    assert.notEqual(rmImg.code, 0);
    assert.match(rmImg.err, /in use by a task/);
    // Each running task has a shim state file with a live container PID 1 and a log showing pid=1.
    for (const t of tasks) {
      const host = (await c.nodes()).find((n: any) => n.id === t.nodeId).description.hostname as string;
      const dir = join(c.stateDir(host), 'tasks', t.id);
      await waitFor(() => existsSync(join(dir, 'container.log')) && readFileSync(join(dir, 'container.log'), 'utf8').includes('pid=1'), 5000, `log of ${t.id}`);
      const log = readFileSync(join(dir, 'container.log'), 'utf8');
      assert.match(log, /"l":"pid=1"/);
      assert.match(log, /"l":"a"/); // /data from the image's second layer
    }
    const rm = await sh('service', 'rm', 'box');
    assert.equal(rm.code, 0, rm.err);
    await waitFor(
      () => ['h1', 'h2'].every((h) => !existsSync(join(c.stateDir(h), 'tasks')) || readdirSync(join(c.stateDir(h), 'tasks')).length === 0),
      20_000,
      'containers stopped and cleaned up',
    );
    // once no task uses it, prune removes it from the worker (and its layers)
    await waitFor(
      async () => {
        await sh('image', 'prune', '--state-dir', c.stateDir('h2'));
        return !localImages(c.stateDir('h2')).some((i) => i.name === 'shoal/busybox:1');
      },
      10_000,
      'image pruned',
    );
    assert.deepEqual(readdirSync(join(c.stateDir('h2'), 'images', 'layers')), []);
  });

  it('service logs merges every task on every node; task exec passes the exit code back; usage is reported', async () => {
    const r = await sh(
      'service',
      'create',
      '--name',
      'talk',
      '--replicas',
      '2',
      'shoal/busybox:1',
      'sh',
      '-c',
      'echo one; echo two >&2; echo three; sleep 300',
    );
    assert.equal(r.code, 0, r.err + r.out);
    await waitFor(
      async () => {
        const l = await sh('service', 'logs', 'talk');
        return (l.out.match(/\| three/g) ?? []).length === 2;
      },
      15_000,
      'both tasks logged three lines',
    );
    const l = await sh('service', 'logs', 'talk');
    assert.equal(l.code, 0, l.err);
    for (const h of ['h1', 'h2']) assert.match(l.out, new RegExp(`talk\\.\\d\\.\\w+@${h} +\\| one`), `a line from ${h}`);
    assert.match(l.err, /\| two/, 'stderr lines go to stderr');
    const tail = await sh('service', 'logs', '--tail', '1', 'talk');
    // one line per task: the last one each logged (stdout and stderr are read apart, so "two" may be last)
    const lines = `${tail.out}${tail.err}`.split('\n').filter((x) => x.includes('| '));
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.ok(
      lines.every((x) => !/\| one/.test(x)),
      lines.join('\n'),
    );
    const t = ((await c.control('GET', '/v1/tasks?service=talk')) as any[])[0];
    const ex = await sh('task', 'exec', t.id, '--', 'sh', '-c', 'echo inside $(hostname); exit 3');
    assert.equal(ex.code, 3);
    assert.match(ex.out, new RegExp(`inside ${t.id.slice(0, 12)}`));
    await waitFor(
      async () => ((await c.control('GET', '/v1/tasks?service=talk')) as any[]).every((x) => x.usage && x.usage.memoryBytes > 0),
      15_000,
      'usage of both tasks reported',
    );
    assert.equal((await sh('service', 'rm', 'talk')).code, 0);
  });

  it('an image no manager has fails the command right away, naming the image', async () => {
    const r = await sh('service', 'create', '-d', '--name', 'ghost', 'nothere:1');
    assert.notEqual(r.code, 0);
    assert.match(r.err, /image nothere:1: not found on any manager/);
    const services = (await c.control('GET', '/v1/services')) as any[];
    assert.ok(!services.some((s) => s.spec.name === 'ghost'), 'nothing was created');
  });
});
