// The dispatcher: unknown flags and commands get the closest declared one suggested, --format / -q /
// --context are accepted anywhere on the line (also before the command), and a user's mistake is one
// CliError before any handler runs.
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CliError } from '../../client/context.ts';
import { isFlagError } from '../../cli/flags.ts';
import { parseServiceCreateArgs } from '../../cli/service-flags.ts';
import { recordingTree, shoal } from './helpers.ts';

const rejects = async (argv: string[], re: RegExp) => {
  const { root, calls } = recordingTree();
  await assert.rejects(shoal(argv, root), (e: unknown) => e instanceof CliError && re.test(e.message));
  assert.equal(calls.length, 0, `${argv.join(' ')}: no handler ran`);
};

describe('unknown flags and commands', () => {
  it('suggest the closest declared flag', async () => {
    await rejects(['node', 'ls', '--formt', 'json'], /^--formt: unknown flag \(did you mean --format\?\)$/);
    await rejects(['service', 'ps', '--al', 'web'], /did you mean --all\?/);
    await rejects(['network', 'create', '--subnett', '10.0.0.0/24', 'n'], /did you mean --subnet\?/);
    await rejects(['cluster', 'update', '--max-replica', '5'], /did you mean --max-replicas\?/);
    await rejects(['lab', 'up', '--worker', '2'], /did you mean --workers\?/);
    await rejects(['service', 'logs', '--tial', '5', 'web'], /did you mean --tail\?/);
    await rejects(['node', 'ls', '--zzzzzz'], /^--zzzzzz: unknown flag$/);
  });

  it('service create and update share the scanner and its hints', async () => {
    await rejects(['service', 'create', '--replica', '3', 'nginx'], /^--replica: unknown flag \(did you mean --replicas\?\)$/);
    await rejects(['service', 'update', '--env', 'A=1', 'web'], /use --env-add \/ --env-rm/);
    assert.throws(
      () => parseServiceCreateArgs(['--publsh', '80:80', 'nginx']),
      (e: unknown) => isFlagError(e) && e.flag === '--publsh' && /did you mean --publish\?/.test(e.message),
    );
  });

  it('suggest the closest command', async () => {
    await rejects(['servce', 'ls'], /^unknown command 'servce' \(did you mean 'service'\?\)/);
    await rejects(['service', 'lss'], /^unknown service command 'lss' \(did you mean 'ls'\?\)/);
    await rejects(['--bogus', 'node', 'ls'], /^--bogus: unknown flag before the command/);
  });
});

describe('--format, -q and --context anywhere on the line', () => {
  const ran = async (argv: string[]) => {
    const { root, calls } = recordingTree();
    assert.equal((await shoal(argv, root)).code, 0);
    assert.equal(calls.length, 1);
    return calls[0]!;
  };

  it('before the command, after it, and between the arguments', async () => {
    for (const argv of [
      ['--format', 'json', 'node', 'ls'],
      ['node', 'ls', '--format', 'json'],
      ['node', 'ls', '--format=json'],
      ['--format=json', 'node', 'ls'],
    ])
      assert.equal((await ran(argv)).output.format, 'json', argv.join(' '));
    const inspect = await ran(['service', 'inspect', 'web', '--format', 'json', 'api']);
    assert.deepEqual(inspect.positionals, ['web', 'api'], 'json is the format, not a service');
    assert.equal(inspect.output.format, 'json');
    const ps = await ran(['service', 'ps', '-q', 'web', '--format', '{{.ID}}']);
    assert.deepEqual([ps.positionals, ps.output.quiet, ps.output.format], [['web'], true, '{{.ID}}']);
    const q = await ran(['-q', 'network', 'ls']);
    assert.equal(q.output.quiet, true);
    const ctx = await ran(['--context', '/tmp/x.json', 'service', 'ls', '-q']);
    assert.equal(ctx.value('context'), '/tmp/x.json');
  });

  it('every ls and ps takes -q and --format; every inspect takes --format', async () => {
    const { leaves } = await import('./helpers.ts');
    for (const { words, cmd } of leaves()) {
      if (words.join(' ') === 'lab ls') continue; // two tables (labs, then hosts): no single row type to format
      const last = words[words.length - 1]!;
      const names = new Set((cmd.flags ?? []).map((f) => f.long));
      if (last === 'ls' || last === 'ps') assert.ok(names.has('format') && names.has('quiet'), words.join(' '));
      if (last === 'inspect') assert.ok(names.has('format'), words.join(' '));
    }
  });

  it('--context is taken out of the words handed to commands that parse their own argv', async () => {
    const c = await ran(['service', 'create', '--context', '/tmp/c.json', '--replicas', '2', 'nginx', 'echo', '--context', 'x']);
    assert.deepEqual(c.argv, ['--replicas', '2', 'nginx', 'echo', '--context', 'x'], 'after the image everything is the command');
    assert.equal(c.value('context'), '/tmp/c.json');
  });
});

describe("a user's mistake stops before any work", () => {
  // The real handlers: the checks live in cli/commands.ts before the lab module runs, so a bad value
  // fails in milliseconds and nothing named after it exists afterwards.
  it('lab up with a bad name or numbers', async () => {
    for (const [argv, re] of [
      [['lab', 'up', '--name', 'barmesh12345'], /^invalid lab name "barmesh12345": use 1-8 of \[a-z0-9\]$/],
      [['lab', 'up', '--name', 'h7t', '--replicas', '0'], /^--replicas must be 1\.\.500/],
      [['lab', 'up', '--name', 'h7t', '--port', '70000'], /^--port must be 1\.\.65535/],
      [['lab', 'up', '--name', 'h7t', '--managers', 'x'], /^--managers must be 1\.\.7/],
      [['lab', 'down', 'BAD-NAME'], /invalid lab name/],
    ] as const) {
      const t = Date.now();
      await assert.rejects(shoal([...argv]), (e: unknown) => e instanceof CliError && re.test(e.message), argv.join(' '));
      assert.ok(Date.now() - t < 5000, `${argv.join(' ')} failed fast`);
    }
    assert.equal(existsSync('/var/lib/shoal-lab/h7t'), false, 'no lab directory was created');
    assert.equal(existsSync('/run/netns/sl-h7t-h1'), false, 'no lab host was created');
  });

  it('a value flag without its value', async () => {
    await rejects(['node', 'ls', '--format'], /^--format: needs a value$/);
    await rejects(['--context'], /^--context: needs a value$/);
  });
});
