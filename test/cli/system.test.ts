// `shoal system install`: the systemd unit that runs `shoal daemon`. The rendering is pure and tested
// here directly; the command is run for real (bin/shoal) against a scratch unit directory. This machine
// has systemd-analyze but PID 1 is not systemd, so the test checks that the unit passes
// `systemd-analyze verify` and says what it must (Restart=always, KillMode=process, …), that install is
// idempotent, and that it refuses clearly when systemd is absent or the caller is not root.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { execStart, parseUnit, quoteExecWord, renderUnit, SYSTEM_PATH, UnitOptionError, unitPath, verifyProblems } from '../../cli/system-unit.ts';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const SHOAL = join(REPO, 'bin', 'shoal');
const TEMPLATE = readFileSync(join(REPO, 'deploy', 'systemd', 'shoal.service.in'), 'utf8');
const isRoot = process.getuid?.() === 0;
const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;

/** A systemd time span as seconds: "500ms", "2", "2s", "1min". */
function seconds(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|sec|min)?$/.exec(v);
  assert.ok(m, `time span ${v}`);
  return Number(m[1]) * ({ ms: 0.001, s: 1, sec: 1, min: 60 } as Record<string, number>)[m[2] ?? 's']!;
}

const opts = {
  launcher: '/opt/shoal/bin/shoal',
  workdir: '/opt/shoal',
  stateDir: '/var/lib/shoal',
  daemonArgs: [],
  docs: 'file:///opt/shoal/docs/operations.md',
  path: unitPath('/opt/node/bin'),
};

describe('systemd unit rendering (pure)', () => {
  it('fills every field of the template and keeps the directives that make supervision work', () => {
    const text = renderUnit(TEMPLATE, opts);
    assert.doesNotMatch(text, /@[A-Z_]+@/, 'no field left unfilled');
    const u = parseUnit(text);
    assert.deepEqual(u.get('Service.ExecStart'), ['/opt/shoal/bin/shoal daemon --state-dir /var/lib/shoal']);
    assert.deepEqual(u.get('Service.Restart'), ['always']);
    assert.deepEqual(u.get('Service.KillMode'), ['process']);
    assert.deepEqual(u.get('Service.Environment'), [`PATH=/opt/node/bin:${SYSTEM_PATH}`], 'the launcher finds node under systemd');
    assert.equal(unitPath('/usr/bin'), SYSTEM_PATH, 'no directory twice');
  });
  it('quotes ExecStart words so systemd passes them through literally', () => {
    assert.equal(quoteExecWord('--insecure-registry'), '--insecure-registry');
    assert.equal(quoteExecWord('10.0.0.9:5000'), '10.0.0.9:5000');
    assert.equal(quoteExecWord('100%'), '100%%', 'specifiers are doubled');
    assert.equal(quoteExecWord('$HOME'), '$$HOME', 'variables are doubled');
    assert.equal(quoteExecWord('a b'), '"a b"');
    assert.equal(quoteExecWord('say "hi" \\o/'), '"say \\"hi\\" \\\\o/"');
    assert.equal(quoteExecWord(''), '""');
    assert.equal(quoteExecWord(';'), '";"', 'a lone ; would end the command');
    assert.equal(
      execStart({ ...opts, daemonArgs: ['--hostname', 'node one'] }),
      '/opt/shoal/bin/shoal daemon --state-dir /var/lib/shoal --hostname "node one"',
    );
  });
  it('refuses inputs that would make a broken or ambiguous unit, naming them', () => {
    assert.throws(
      () => renderUnit(TEMPLATE, { ...opts, stateDir: 'var/lib/shoal' }),
      (e: unknown) => e instanceof UnitOptionError && /--state-dir must be an absolute path/.test(e.message),
    );
    assert.throws(() => renderUnit(TEMPLATE, { ...opts, daemonArgs: ['--state-dir', '/x'] }), UnitOptionError);
    assert.throws(() => renderUnit(TEMPLATE, { ...opts, daemonArgs: ['--hostname', 'a\nExecStartPre=/bin/evil'] }), /newline/);
  });
  it('counts every line systemd-analyze writes about the unit as a problem, even when it exits 0', () => {
    const f = '/tmp/x/shoal.service';
    assert.deepEqual(verifyProblems('', 0, f), []);
    assert.deepEqual(verifyProblems(`${f}:14: Failed to parse kill mode specification, ignoring: bogus`, 0, f), [
      `${f}:14: Failed to parse kill mode specification, ignoring: bogus`,
    ]);
    assert.equal(verifyProblems(`shoal.service: Command /opt/shoal/bin/shoal is not executable: No such file or directory`, 1, f).length, 1);
    assert.deepEqual(verifyProblems('something else broke', 1, f), ['something else broke']);
  });
});

describe('shoal system install (bin/shoal, scratch unit directory)', {
  skip: !isRoot ? 'needs root' : !hasAnalyze ? 'needs systemd-analyze' : false,
  timeout: 120_000,
}, () => {
  const tmp = mkdtempSync(join(tmpdir(), 'shoal-system-'));
  const unitDir = join(tmp, 'units');
  const stateDir = join(tmp, 'state');
  const unitPath = join(unitDir, 'shoal.service');
  after(() => rmSync(tmp, { recursive: true, force: true }));

  const shoal = (args: string[], asNobody = false) =>
    new Promise<{ code: number; out: string; err: string }>((res) => {
      const [cmd, argv] = asNobody ? ['setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', SHOAL, ...args]] : [SHOAL, args];
      execFile(cmd, argv, { timeout: 60_000, cwd: '/' }, (e, out, err) =>
        res({ code: e ? (typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : 1) : 0, out: String(out), err: String(err) }),
      );
    });
  const install = (...extra: string[]) =>
    shoal(['system', 'install', '--unit-dir', unitDir, '--state-dir', stateDir, ...extra, '--', '--insecure-registry', '10.0.0.9:5000']);
  const systemdRuns = existsSync('/run/systemd/system');

  it('writes a unit that passes systemd-analyze verify, with the directives supervision needs', async () => {
    const r = await install();
    if (systemdRuns) assert.equal(r.code, 0, r.err);
    else {
      // no systemd here: it still writes and verifies the unit, then refuses in one line, saying why
      assert.equal(r.code, 1);
      assert.equal(r.err.trim().split('\n').length, 1, `one line: ${r.err}`);
      assert.match(r.err, /systemd is not running on this host \(PID 1 is .+\): .*shoal\.service is written and verified/);
    }
    assert.match(r.out, /wrote .*shoal\.service \(verified\)/);
    const v = spawnSync('systemd-analyze', ['verify', unitPath], { encoding: 'utf8' });
    assert.equal(v.status, 0, v.stderr);
    assert.equal(`${v.stdout}${v.stderr}`.trim(), '', 'systemd-analyze has nothing to say about it');

    const u = parseUnit(readFileSync(unitPath, 'utf8'));
    const one = (k: string) => {
      const vals = u.get(k);
      assert.equal(vals?.length, 1, `${k} set once: ${JSON.stringify(vals)}`);
      return vals![0]!;
    };
    const exec = one('Service.ExecStart').split(' ');
    assert.equal(exec[0], realpathSync(SHOAL), 'the launcher by its absolute path');
    assert.deepEqual(exec.slice(1), ['daemon', '--state-dir', stateDir, '--insecure-registry', '10.0.0.9:5000']);
    assert.equal(one('Service.WorkingDirectory'), REPO);
    assert.ok(one('Service.Environment').startsWith(`PATH=${dirname(process.execPath)}:`) || one('Service.Environment') === `PATH=${SYSTEM_PATH}`);
    assert.equal(one('Service.Restart'), 'always');
    assert.equal(one('Service.KillMode'), 'process', 'containers (their shims) outlive a daemon restart');
    assert.equal(one('Service.LimitNOFILE'), '1048576');
    assert.equal(one('Service.TasksMax'), 'infinity');
    assert.equal(one('Service.Delegate'), 'yes');
    assert.equal(one('Service.Type'), 'exec');
    // Back well within the Down window (3 heartbeats of 1 s), yet never a zero-delay loop; and the start
    // limit can trigger: a crash loop ends in failed, not a storm.
    const restartS = seconds(one('Service.RestartSec'));
    assert.ok(restartS > 0 && restartS <= 1, `RestartSec ${restartS} s`);
    const burst = Number(one('Unit.StartLimitBurst'));
    assert.ok(burst > 1 && burst * restartS < seconds(one('Unit.StartLimitIntervalSec')), 'the start limit can trigger');
    assert.equal(u.get('Service.OOMScoreAdjust'), undefined, 'containers would inherit it');
    assert.ok(u.get('Unit.After')!.includes('network-online.target'));
    assert.ok(u.get('Unit.Wants')!.includes('network-online.target'));
    assert.equal(one('Install.WantedBy'), 'multi-user.target');
    assert.equal(statSync(stateDir).mode & 0o777, 0o700, 'the state directory is root-only');
  });

  it('is idempotent: a second run leaves the unit as it is', async () => {
    const before = statSync(unitPath);
    const r = await install('--no-enable');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /shoal\.service is up to date \(verified\)/);
    assert.match(r.out, /not enabled \(--no-enable\)/);
    const now = statSync(unitPath);
    assert.equal(now.ino, before.ino, 'not rewritten');
    assert.equal(now.mtimeMs, before.mtimeMs);
  });

  it('refuses without root, in one line, writing nothing', async () => {
    const other = join(tmp, 'nobody-units');
    const r = await shoal(['system', 'install', '--unit-dir', other, '--state-dir', join(tmp, 'nobody-state')], true);
    assert.equal(r.code, 1);
    assert.equal(r.err.trim().split('\n').length, 1, `one line: ${r.err}`);
    assert.match(r.err, /must run as root/);
    assert.ok(!existsSync(other) && !existsSync(join(tmp, 'nobody-state')), 'nothing written');
  });

  it('refuses a launcher that is not executable, before writing anything', async () => {
    const other = join(tmp, 'bad-units');
    const r = await shoal(['system', 'install', '--unit-dir', other, '--shoal', join(REPO, 'package.json')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /--shoal .*package\.json: not an executable file/);
    assert.ok(!existsSync(other));
  });

  it('`system unit` prints the same unit without installing anything', async () => {
    const r = await shoal(['system', 'unit', '--state-dir', stateDir, '--', '--insecure-registry', '10.0.0.9:5000']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, readFileSync(unitPath, 'utf8'));
  });

  it('uninstall removes the unit and keeps the state directory; a second one has nothing to do', async () => {
    const r = await shoal(['system', 'uninstall', '--unit-dir', unitDir, '--state-dir', stateDir]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /removed .*shoal\.service; the state directory .* is kept/);
    assert.ok(!existsSync(unitPath) && existsSync(stateDir));
    const again = await shoal(['system', 'uninstall', '--unit-dir', unitDir]);
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /is not installed/);
  });
});
