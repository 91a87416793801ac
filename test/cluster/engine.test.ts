// Service tasks as real containers on lab hosts: daemons run the engine executor; an image built by the
// test (busybox, OCI layout) is loaded on each host with `shoal image load`; a service's tasks become
// isolated containers (own PID namespace, the image as root) and are stopped when the service goes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { localCall } from '../../cli/shoal.ts';
import { baseImage, ociFiles, tarFiles } from '../images/fixtures.ts';
import { ClusterLab, waitFor } from './cluster-lab.ts';
import { cleanupOnExit } from './lab.ts';

const NAME = `e${process.pid % 10000}`;
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
    for (const h of ['h1', 'h2']) await localCall(c.stateDir(h), 'POST', '/images/load', { path: archive });
  });

  after(async () => {
    await c?.down();
    unhook();
    rmSync(tmp, { recursive: true, force: true });
  });

  const sh = (...args: string[]) =>
    new Promise<{ code: number; out: string; err: string }>((res) => {
      execFile(SHOAL, args, { env: { ...process.env, SHOAL_CONTEXT: c.contextPath }, timeout: 60_000 }, (e, out, err) => res({ code: e ? 1 : 0, out: String(out), err: String(err) }));
    });

  it('image ls lists the loaded image on a node', async () => {
    const r = await sh('image', 'ls', '--state-dir', c.stateDir('h2'));
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /shoal\/busybox:1/);
  });

  it('a service runs as isolated containers from the image, and stops when removed', async () => {
    const r = await sh('service', 'create', '--name', 'box', '--replicas', '2', 'shoal/busybox:1', 'sh', '-c', 'echo pid=$$; ls /data; sleep 300');
    assert.equal(r.code, 0, r.err + r.out);
    const tasks = (await c.control('GET', '/v1/tasks?service=box')) as any[];
    assert.equal(tasks.filter((t) => t.status.state === 'running').length, 2);
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
    await waitFor(async () => ((await c.control('GET', '/v1/tasks?service=box').catch(() => [])) as any[]).length === 0 || true, 1000, 'removal');
    await waitFor(() => ['h1', 'h2'].every((h) => !existsSync(join(c.stateDir(h), 'tasks')) || readdirSync(join(c.stateDir(h), 'tasks')).length === 0), 20_000, 'containers stopped and cleaned up');
  });

  it('an image that is not on the node is rejected with a reason', async () => {
    const r = await sh('service', 'create', '-d', '--name', 'ghost', 'nothere:1');
    assert.equal(r.code, 0, r.err);
    await waitFor(async () => ((await c.control('GET', '/v1/tasks?service=ghost&all=1')) as any[]).some((t) => t.status.state === 'rejected'), 10_000, 'rejected task');
    const t = ((await c.control('GET', '/v1/tasks?service=ghost&all=1')) as any[]).find((x) => x.status.state === 'rejected');
    assert.match(t.status.err, /image nothere:1 is not present on this node/);
    await sh('service', 'rm', 'ghost');
  });
});
