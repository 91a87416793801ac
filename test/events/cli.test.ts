// `shoal events` (cli/events.ts): the docker-events line, times and durations, and the command run
// in-process against a one-manager daemon (test executor, loopback, real mutual TLS), replaying a
// service's create, scale and removal with --since/--until, filters and templates, and a clear error
// for a bad time.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventLine, eventTimeArg, eventsCmd, nanoTime } from '../../cli/events.ts';
import { main } from '../../cli/shoal.ts';
import { CliError } from '../../client/context.ts';
import { OneManager, dockerCli } from '../docker-api/harness.ts';
import { recordingTree } from '../cli/helpers.ts';

describe('shoal events output', () => {
  it('prints like docker events: nanosecond time, type, action, id, name first', () => {
    assert.equal(nanoTime('2026-12-06T08:00:00.123Z'), '2026-12-06T08:00:00.123000000Z');
    assert.equal(nanoTime('2026-12-06T08:00:00Z'), '2026-12-06T08:00:00.000000000Z');
    const line = eventLine({
      seq: '12.0',
      time: '2026-12-06T08:00:00.000Z',
      type: 'service',
      action: 'update',
      actor: { id: 'abc123', name: 'web', attributes: { 'replicas.old': '2', 'replicas.new': '5', name: 'web' } },
    });
    assert.equal(line, '2026-12-06T08:00:00.000000000Z service update abc123 (name=web, replicas.old=2, replicas.new=5)');
  });

  it('turns a duration into Unix seconds back from now and passes other forms on', () => {
    const now = Date.parse('2026-12-06T08:00:00Z');
    assert.equal(eventTimeArg('10m', now), String((now - 600_000) / 1000));
    assert.equal(eventTimeArg('1h30m', now), String((now - 5_400_000) / 1000));
    assert.equal(eventTimeArg('2026-12-06T07:00:00Z', now), '2026-12-06T07:00:00Z');
    assert.equal(eventTimeArg('1796544000.5', now), '1796544000.5');
  });
});

describe('shoal events against a manager', () => {
  const m = new OneManager();
  let ctxFile = '';
  before(async () => {
    await m.start();
    ctxFile = join(m.dir, 'context.json');
    writeFileSync(ctxFile, JSON.stringify(m.context));
  });
  after(async () => m.stop());

  /** `shoal ARGV` (an events command), parsed by the real dispatcher, run with its output captured. */
  async function shoal(argv: string[]): Promise<{ code: number; out: string }> {
    const { root, calls } = recordingTree();
    const out: string[] = [];
    try {
      await main(['--context', ctxFile, ...argv], { out: (s) => out.push(`${s}\n`) }, root);
      const code = await eventsCmd(calls[0]!, (s) => void out.push(s));
      return { code, out: out.join('') };
    } catch (x) {
      if (!(x instanceof CliError)) throw x;
      return { code: 1, out: x.message };
    }
  }

  it('replays a service’s create, scale and removal, with its tasks, in log order', async (t) => {
    if (!(await dockerCli())) {
      t.skip('no docker CLI on PATH');
      return;
    }
    const since = new Date(Date.now() - 1000).toISOString();
    const ok = async (args: string[]) => {
      const r = await m.docker(args);
      assert.equal(r.code, 0, r.stderr);
    };
    await ok(['service', 'create', '-d', '--name', 'evc', '--replicas', '1', '--no-resolve-image', 'busybox:1.36']);
    await ok(['service', 'scale', '-d', 'evc=2']);
    await ok(['service', 'rm', 'evc']);
    const until = String(Date.now() / 1000 + 1);
    const r = await shoal(['events', '--since', since, '--until', until, '--filter', 'type=service', '--format', '{{.Type}} {{.Action}} {{.Actor.Name}}']);
    assert.equal(r.code, 0, r.out);
    assert.deepEqual(r.out.trim().split('\n'), ['service create evc', 'service update evc', 'service remove evc']);
    const plain = await shoal(['events', '--since', since, '--until', until, '--filter', 'name=evc']);
    const lines = plain.out.trim().split('\n');
    assert.match(lines[0]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z service create \S+ \(name=evc, image=busybox:1\.36, mode=replicated, replicas=1\)$/);
    assert.ok(
      lines.some((l) => / service update \S+ \(name=evc, replicas\.old=1, replicas\.new=2\)$/.test(l)),
      plain.out,
    );
    assert.ok(
      lines.some((l) => / task create \S+ \(name=evc\.2, /.test(l)),
      plain.out,
    );
    // JSON lines carry seq in log order.
    const json = await shoal(['events', '--since', since, '--until', until, '--filter', 'name=evc', '--format', 'json']);
    const seqs = json.out
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { seq: string }).seq.split('.').map(Number));
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i - 1]![0]! * 1e6 + seqs[i - 1]![1]! < seqs[i]![0]! * 1e6 + seqs[i]![1]!);
  });

  it('a bad time or filter fails with one line naming it', async () => {
    const r = await shoal(['events', '--since', 'last tuesday', '--until', '1']);
    assert.equal(r.code, 1);
    assert.match(r.out, /since "last tuesday": not a time/);
    const f = await shoal(['events', '--filter', 'colour=red', '--until', '1']);
    assert.equal(f.code, 1);
    assert.match(f.out, /unknown key "colour"/);
  });
});
