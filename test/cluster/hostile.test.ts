// The hostile-peer suite on real daemons (issue 11): for a short seeded run, a worker holding a real
// certificate, an admin client and unauthenticated strangers attack a 3-manager + 1-worker lab while a
// service runs and a writer commits. Nothing they send may take a daemon down, lose an acknowledged
// write, unsettle the service or the leader, or grow the leader's memory without bound; every hostile
// request gets a 4xx (503 only in an election) or a closed connection. Set HOSTILE_SEED to replay a run.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ClusterLab } from '../../lab/cluster-lab.ts';
import { cleanupOnExit } from '../../lab/lab.ts';
import { DISPATCHER_TYPES } from '../hostile/generate.ts';
import { reportLines, runHostile, type HostileReport } from '../hostile/run.ts';

const NAME = 'h5x';
const SEED = Number(process.env.HOSTILE_SEED ?? 11);
/** Long enough to cover every family and message type; `npm run bench:hostile` runs longer attacks. */
const ATTACK_SECONDS = 25;
/** A floor that proves the attack happened even on a starved machine (a free one sends tens of thousands). */
const MIN_INPUTS = 500;
/** Peak leader RSS allowed: the baseline plus this (an unbounded queue or buffer blows far past it). */
const RSS_GROWTH_LIMIT_KIB = 512 * 1024;
/** An absolute ceiling as well (a daemon on this lab idles near 100-200 MiB). */
const RSS_LIMIT_KIB = 1024 * 1024;

describe('hostile peers cannot take a Shoal daemon down', { concurrency: false, timeout: 300_000 }, () => {
  let c: ClusterLab;
  let unhook: () => void = () => {};
  let r: HostileReport;

  before(async () => {
    unhook = cleanupOnExit(NAME);
    c = await ClusterLab.up({ name: NAME, managers: 3, workers: 1 });
    r = await runHostile(c, {
      seed: SEED,
      seconds: ATTACK_SECONDS,
      workers: 3,
      rates: { workerPerConn: 120, adminConns: 6, adminPerConn: 15, unauthPerSec: 15, unauthMaxOpen: 200 },
      baselineSeconds: 5,
      replicas: 4,
      log: (l) => console.log(`# ${l}`),
    });
    for (const l of reportLines(r)) console.log(`# ${l}`);
    // The whole report (every outcome by kind) for whoever fixes what the run found.
    const file = join(tmpdir(), `shoal-hostile-${NAME}-${SEED}.json`);
    writeFileSync(file, JSON.stringify(r, null, 2));
    console.log(`# full report: ${file}`);
    for (const f of r.findings) console.log(`# finding ${f.kind}: ${f.input} => ${f.outcome}`);
    for (const [h, tail] of Object.entries(r.crashLogs)) console.log(`# ${h} daemon exited; its log ends:\n${tail}`);
    if (r.leader.changes > 0 || r.leader.after.term !== r.leader.before.term)
      for (const [h, l] of Object.entries(r.managerLogs)) console.log(`# ${h} log (elections, peers, errors):\n${l}`);
    console.log(`# attacker log:\n${r.attackerLog.replace(/^/gm, '#   ')}`);
  });

  after(async () => {
    await c?.down();
    unhook();
  });

  it('the attack really ran: every family, every dispatcher message type', () => {
    assert.equal(r.attackerExit, 0, `the attacker process failed:\n${r.attackerLog}`);
    // Volume depends on the machine (the bench reports it); coverage must not.
    assert.ok(r.totalInputs >= MIN_INPUTS, `only ${r.totalInputs} hostile inputs were sent`);
    const kinds = Object.keys(r.sent);
    for (const f of ['dispatcher', 'admin', 'unauth'])
      assert.ok(
        kinds.some((k) => k.startsWith(`${f}/`)),
        `no ${f} inputs were sent`,
      );
    for (const t of DISPATCHER_TYPES)
      assert.ok(
        kinds.some((k) => k.startsWith(`dispatcher/${t}/`)),
        `no ${t} messages were sent`,
      );
    assert.ok(
      kinds.some((k) => k.startsWith('dispatcher/frame/')),
      'no frame-level attacks were sent',
    );
  });

  it('no daemon exited', () => {
    assert.deepEqual(r.daemonsExited, []);
  });

  it('every acknowledged write is present', () => {
    assert.ok(r.writes.acked > 0, `the writer got no write acknowledged (${JSON.stringify(r.writes.errors)})`);
    assert.deepEqual(r.writes.lost, []);
  });

  it('the service is still converged', () => {
    assert.ok(r.service.converged, `${r.service.running}/${r.service.desired} tasks running after the attack`);
  });

  it('the leader did not change: same leader, same term, no other leader seen', () => {
    assert.equal(r.leader.after.id, r.leader.before.id);
    assert.equal(r.leader.after.term, r.leader.before.term, 'an election happened during the attack');
    assert.equal(r.leader.changes, 0, `leaders seen: ${JSON.stringify(r.leader.epochs)}`);
  });

  it("the leader's memory stayed bounded", () => {
    assert.ok(r.rss.peakKiB <= r.rss.beforeKiB + RSS_GROWTH_LIMIT_KIB, `peak RSS ${r.rss.peakKiB} KiB from ${r.rss.beforeKiB} KiB`);
    assert.ok(r.rss.peakKiB <= RSS_LIMIT_KIB, `peak RSS ${r.rss.peakKiB} KiB`);
  });

  it('every hostile input was refused properly (4xx, 503 in an election, or a closed connection)', () => {
    assert.deepEqual(
      r.findings.map((f) => `${f.kind}: ${f.input} => ${f.outcome}`),
      [],
    );
  });
});
