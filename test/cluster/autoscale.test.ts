// Autoscaling on a real lab (1 manager + 2 workers, engine executor): a service created with
// `shoal service create --autoscale` whose tasks burn CPU (under a 0.2-CPU limit) while a flag file exists
// in a host directory bind-mounted into them. The load is real — real processes in real cgroups, measured
// by the real agents and sent to the leader — only switching it on and off is a file. With the load on,
// the service scales out to its max; with it off, back in to its min. Short windows come from the spec
// (window 10 s, cooldowns 5 s). Also: service ls shows the bounds, service inspect the last decision,
// `service autoscale` what the leader's autoscaler wants now,
// and `--autoscale none` removes the policy without touching the count.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BURN_IMAGE, BURN_SCRIPT, loadBurnImage } from '../../bench/autoscale.ts';
import { ClusterLab, waitFor } from '../../lab/cluster-lab.ts';
import { cleanupOnExit } from '../../lab/lab.ts';

const NAME = `as${process.pid % 10000}`;
const SHOAL = join(resolve(fileURLToPath(new URL('../..', import.meta.url))), 'bin', 'shoal');

describe('autoscaling on a lab', { concurrency: false }, () => {
  let c: ClusterLab;
  let unhook: () => void = () => {};
  const tmp = mkdtempSync(join(tmpdir(), 'shoal-as-'));
  const ctl = join(tmp, 'ctl');
  const flag = join(ctl, 'on');

  before(async () => {
    unhook = cleanupOnExit(NAME);
    mkdirSync(ctl);
    c = await ClusterLab.up({ name: NAME, managers: 1, workers: 2, executor: 'engine' });
    await loadBurnImage(c, tmp);
  });

  after(async () => {
    await c?.down();
    unhook();
    rmSync(tmp, { recursive: true, force: true });
  });

  const sh = (...args: string[]) =>
    new Promise<{ code: number; out: string; err: string }>((res) => {
      execFile(SHOAL, args, { env: { ...process.env, SHOAL_CONTEXT: c.contextPath }, timeout: 120_000 }, (e, out, err) =>
        res({ code: e ? (typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : 1) : 0, out: String(out), err: String(err) }),
      );
    });
  const svc = async (): Promise<any> => c.control('GET', '/v1/services/burn');
  const poll = (cond: () => Promise<boolean>) => async () => cond().catch(() => false);

  it('scales out while the tasks burn CPU, and back in after the load stops', async () => {
    const r = await sh(
      'service',
      'create',
      '--name',
      'burn',
      '--detach',
      '--limit-cpu',
      '0.2',
      '--stop-grace-period',
      '1s',
      '--mount',
      `type=bind,source=${ctl},target=/ctl,readonly`,
      '--autoscale',
      'min=1,max=3,cpu=40%,window=10s,cooldown=5s',
      '--entrypoint',
      '/bin/sh',
      BURN_IMAGE,
      '-c',
      BURN_SCRIPT,
    );
    assert.equal(r.code, 0, r.err + r.out);
    const s0 = await svc();
    assert.deepEqual(s0.spec.autoscale, { min: 1, max: 3, cpu: 40, windowMs: 10_000, cooldowns: { outMs: 5000, inMs: 5000 } });
    await waitFor(
      poll(async () => (await svc()).replicas.running === 1),
      120_000,
      'one task running',
      250,
    );
    assert.match((await sh('service', 'ls')).out, /burn\s+replicated\s+1\/1 \(auto 1–3\)/);

    // Idle: nothing changes over a whole window (two usage reports of the running task).
    await new Promise((res) => setTimeout(res, 10_000));
    assert.equal((await svc()).spec.mode.replicated.replicas, 1);
    assert.equal((await svc()).status.autoscale, undefined);
    // What the leader's autoscaler makes of it now (its memory, served by the leader).
    const idle = await sh('service', 'autoscale', 'burn');
    assert.equal(idle.code, 0, idle.err);
    assert.match(idle.out, /^Service:\s+burn \(/m);
    assert.match(idle.out, /^Policy:\s+min 1, max 3, cpu 40%; window 10s, cooldowns out 5s \/ in 5s$/m);
    assert.match(idle.out, /^Last change:\s+none yet$/m);
    assert.match(idle.out, /^Now:\s+holds 1: .+ \(evaluated (less than a second|\d+ seconds?) ago\)$/m);

    writeFileSync(flag, '');
    await waitFor(
      poll(async () => (await svc()).spec.mode.replicated.replicas === 3 && (await svc()).replicas.running === 3),
      150_000,
      'scaled out to 3',
      500,
    );
    const out = (await svc()).status.autoscale;
    assert.equal(out.to, 3);
    assert.match(out.reason, /cpu \d+% of limit \(target 40%\)/);
    const report = await sh('service', 'autoscale', 'burn');
    assert.match(report.out, /^Last change:\s+[12] → 3, [^:]+ ago: cpu \d+% of limit/m);
    const rec = await sh('service', 'autoscale', '--format', '{{.Decision.Recommendation}} {{.LastChange.To}}', 'burn');
    assert.match(rec.out.trim(), /^\d+ 3$/);
    const inspect = await sh('service', 'inspect', 'burn');
    assert.match(inspect.out, /"autoscale"/);
    assert.match(inspect.out, /"reason": "cpu \d+% of limit/);

    unlinkSync(flag);
    await waitFor(
      poll(async () => (await svc()).spec.mode.replicated.replicas === 1),
      180_000,
      'scaled back in to 1',
      500,
    );
    const back = (await svc()).status.autoscale;
    assert.equal(back.to, 1);
    assert.ok(back.from > 1);
    await waitFor(
      poll(async () => (await svc()).replicas.running === 1),
      60_000,
      'one task left running',
      250,
    );
  });

  it('--autoscale none removes the policy and leaves the count alone; bad policies are refused naming the field', async () => {
    const r = await sh('service', 'update', '--detach', '--autoscale', 'none', 'burn');
    assert.equal(r.code, 0, r.err + r.out);
    const s = await svc();
    assert.equal(s.spec.autoscale, undefined);
    assert.equal(s.spec.mode.replicated.replicas, 1);
    assert.match((await sh('service', 'autoscale', 'burn')).out, /^Service burn has no autoscale policy/);
    const missing = await sh('service', 'autoscale', 'nope');
    assert.notEqual(missing.code, 0);
    assert.match(missing.err, /service nope not found/);
    const bad = await sh('service', 'update', '--detach', '--autoscale', 'min=3,max=2,cpu=50%', 'burn');
    assert.notEqual(bad.code, 0);
    assert.match(bad.err, /autoscale\.max \(2\) must not be below autoscale\.min \(3\)/);
    const global = await sh('service', 'create', '--detach', '--name', 'g', '--mode', 'global', '--autoscale', 'min=1,max=2,cpu=50%', BURN_IMAGE);
    assert.notEqual(global.code, 0);
    assert.match(global.err, /only a replicated service can be autoscaled/);
    assert.equal(((await c.control('GET', '/v1/services')) as unknown[]).length, 1);
  });
});
