// `shoal daemon` without the rest of the CLI (docs/design/build.md, "Memory"): a plain `shoal daemon
// FLAGS` is parsed from the daemon's own declaration (cli/daemon-command.ts) into the very Invocation the
// dispatcher builds, every other line goes to the dispatcher; and what a worker's process imports
// statically (the CLI entry, the daemon command, the daemon) holds neither the command tree nor the
// manager's Raft and IPAM modules, whose errors manager/api/errors.ts maps by brand.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { plainDaemonRun } from '../../cli/daemon-command.ts';
import { recordingTree, shoal } from './helpers.ts';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));

describe('plainDaemonRun', () => {
  it('builds the Invocation the dispatcher builds for a plain `shoal daemon FLAGS`', async () => {
    for (const argv of [
      ['daemon'],
      [
        'daemon',
        '--state-dir',
        '/var/lib/shoal-x',
        '--hostname=h1',
        '--executor',
        'test',
        '--insecure-registry',
        '10.0.0.9:5000',
        '--insecure-registry=10.0.0.8:5000',
        '--netns-prefix',
        'lab-',
        '--election-ms',
        '300',
        '--metrics-addr',
        '127.0.0.1:9323',
      ],
      ['daemon', '--hostname', '-h1'], // a value may start with '-'
      ['daemon', '--hostname', 'a', '--hostname', 'b'],
      ['daemon', 'stray'], // parsed; the handler rejects it, whichever path ran it
    ]) {
      const { root, calls } = recordingTree();
      assert.equal((await shoal(argv, root)).code, 0, argv.join(' '));
      assert.equal(calls.length, 1);
      assert.deepStrictEqual(plainDaemonRun(argv), calls[0], argv.join(' '));
    }
  });

  it('leaves help, --context, --, other commands and every mistake to the dispatcher', () => {
    for (const argv of [
      ['daemon', '--help'],
      ['daemon', '-h'],
      ['daemon', '--hostname', 'h1', '--help'],
      ['daemon', '--context', 'c.json'],
      ['daemon', '--context=c.json'],
      ['daemon', '--', 'x'],
      ['daemon', '--hostnme', 'h1'], // unknown: the dispatcher suggests --hostname
      ['daemon', '--hostname'], // no value
      ['daemon', '-x'],
      ['--context', 'c.json', 'daemon'],
      ['help', 'daemon'],
      ['node', 'ls'],
      [],
    ])
      assert.equal(plainDaemonRun(argv), null, argv.join(' '));
  });
});

describe("a worker daemon's static imports", () => {
  it('hold neither the command tree nor Raft, IPAM or the help', async () => {
    // The closure a worker evaluates: the CLI entry, `shoal daemon`'s handler and the daemon, whose
    // manager half is imported only when the node is a manager (daemon/daemon.ts startManager).
    const entries = ['cli/shoal.ts', 'cli/daemon.ts', 'daemon/daemon.ts'];
    const r = await build({
      absWorkingDir: REPO,
      entryPoints: entries,
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      packages: 'external',
      write: false,
      outdir: 'out',
      metafile: true,
      logLevel: 'error',
    });
    const inputs = r.metafile.inputs;
    const seen = new Set<string>();
    const stack = [...entries];
    while (stack.length > 0) {
      const f = stack.pop()!;
      if (seen.has(f) || inputs[f] === undefined) continue;
      seen.add(f);
      for (const i of inputs[f].imports) if (i.kind === 'import-statement' && !i.external) stack.push(i.path);
    }
    assert.ok(seen.has('daemon/daemon.ts') && seen.has('worker/agent.ts') && seen.has('manager/api/errors.ts'), 'the closure was followed');
    for (const f of [
      'cli/commands.ts',
      'cli/service-flags.ts',
      'cli/help.ts',
      'cli/format.ts',
      'manager/raft/core.ts',
      'manager/raft/node.ts',
      'manager/allocator/ipam.ts',
      'manager/manager.ts',
    ]) {
      const by = [...seen].filter((s) => inputs[s]!.imports.some((i) => i.kind === 'import-statement' && i.path === f));
      assert.ok(!seen.has(f), `${f} is not imported statically (it is by ${by.join(', ')})`);
    }
  });
});
