// --help on every command and group is generated from the one declaration (cli/commands.ts): each
// command's help lists every declared flag on its own line, each group lists its subcommands.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { groups, leaves, shoal } from './helpers.ts';

describe('shoal --help', () => {
  it('every command lists its usage and each of its flags on one line', async () => {
    const all = leaves();
    assert.ok(all.length >= 40, `only ${all.length} commands declared`);
    for (const { words, cmd } of all) {
      for (const form of [
        [...words, '--help'],
        [...words, '-h'],
        ['help', ...words],
      ]) {
        const { code, out } = await shoal(form);
        assert.equal(code, 0, form.join(' '));
        assert.match(out, new RegExp(`^Usage: shoal ${words.join(' ')}\\b`), form.join(' '));
        assert.ok(out.includes(cmd.summary), `${form.join(' ')}: summary`);
        const from = out.indexOf('Options:');
        const options = from < 0 ? '' : out.slice(from, out.indexOf('\n\n', from) < 0 ? undefined : out.indexOf('\n\n', from));
        for (const f of cmd.flags ?? []) {
          const lines = options.split('\n').filter((l) => new RegExp(`(^|\\s)--${f.long}(\\s|$)`).test(l));
          assert.equal(lines.length, 1, `${words.join(' ')} --help: one line for --${f.long}`);
          assert.ok(lines[0]!.includes(f.help), `${words.join(' ')} --help: --${f.long} has its help text`);
          if (f.short) assert.match(lines[0]!, new RegExp(`-${f.short}, --${f.long}`));
        }
      }
    }
  });

  it('every group lists its subcommands with their summaries', async () => {
    for (const { words, cmd } of groups()) {
      for (const form of [[...words, '--help'], words]) {
        const { code, out } = await shoal(form);
        assert.equal(code, 0);
        assert.match(out, new RegExp(`^Usage: shoal${words.length ? ` ${words.join(' ')}` : ''} COMMAND`));
        for (const s of cmd.subcommands!) assert.match(out, new RegExp(`^  ${s.name}\\s+${s.summary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
      }
    }
  });

  it('service create and service update list the Docker flags they parse', async () => {
    const create = (await shoal(['service', 'create', '--help'])).out;
    for (const f of ['--replicas N', '-p, --publish port', '-e, --env KEY=value', '--constraint expr', '--mode mode', '-d, --detach'])
      assert.ok(create.includes(f), f);
    const update = (await shoal(['service', 'update', '--help'])).out;
    for (const f of ['--image string', '--env-add', '--publish-rm', '--rollback', '--force']) assert.ok(update.includes(f), f);
    assert.ok(!update.includes('--name string'), 'update has no --name');
  });

  it('--help after the image of service create is part of the command, not a request for help', async () => {
    const { root, calls } = (await import('./helpers.ts')).recordingTree();
    await shoal(['service', 'create', 'nginx', 'sh', '--help'], root);
    assert.deepEqual(calls[0]!.argv, ['nginx', 'sh', '--help']);
  });
});
