// The built product: bin/shoal runs from any directory and through a symlink (node resolves the
// launcher's real path), `shoal completion bash` completes the declared words, and a user's mistake is
// one line on stderr with exit code 1. Runs the real launcher, which builds dist/ first if stale.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compiledEntry } from '../../lab/compiled.ts';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
let dir = '';
let link = '';

const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(link, args, { cwd: '/', encoding: 'utf8', env: { ...process.env, SHOAL_CONTEXT: join(dir, 'none.json'), ...env }, timeout: 120_000 });

describe('bin/shoal', () => {
  before(() => {
    compiledEntry('cli/shoal'); // build dist/ now if stale, so the runs below are the fast path
    dir = mkdtempSync(join(tmpdir(), 'shoal-cli-'));
    link = join(dir, 'shoal');
    symlinkSync(join(REPO, 'bin', 'shoal'), link);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('runs the built CLI from / through a symlink', () => {
    const r = run(['--help']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Usage: shoal COMMAND/);
    const c = run(['service', 'create', '--help']);
    assert.equal(c.status, 0, c.stderr);
    assert.match(c.stdout, /^\s+--replicas N\s+Number of tasks$/m);
  });

  it("a user's mistake: one line on stderr, exit code 1, no stack", () => {
    for (const args of [['lab', 'up', '--name', 'barmesh12345'], ['node', 'ls', '--formt', 'json'], ['service', 'inspect', 'web'], ['nope']]) {
      const r = run(args);
      assert.equal(r.status, 1, args.join(' '));
      assert.equal(r.stdout, '', `${args.join(' ')}: nothing on stdout (no work started)`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line, got ${r.stderr}`);
      assert.match(r.stderr, /^shoal: /);
    }
  });

  it('completion bash completes commands, subcommands and flags', () => {
    const script = run(['completion', 'bash']);
    assert.equal(script.status, 0, script.stderr);
    const file = join(dir, 'completion.bash');
    writeFileSync(file, script.stdout);
    const complete = (line: string) => {
      const words = line.split(' ');
      const r = spawnSync(
        'bash',
        [
          '-c',
          `source ${file}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _shoal; printf '%s\\n' "\${COMPREPLY[@]}"`,
        ],
        { encoding: 'utf8' },
      );
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.trim().split('\n').filter(Boolean).sort();
    };
    assert.deepEqual(complete('shoal serv'), ['service']);
    assert.deepEqual(complete('shoal service cr'), ['create']);
    assert.deepEqual(complete('shoal service create --repl'), ['--replicas', '--replicas-max-per-node']);
    assert.deepEqual(complete('shoal --context /x node ls --for'), ['--format']);
    assert.ok(complete('shoal lab ').includes('restart'));
  });
});
