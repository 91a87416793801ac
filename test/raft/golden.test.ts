// Runs every golden trace in test/raft/golden/testdata: each command's printed output must match the
// file exactly. After an intended change of behaviour, `GOLDEN_UPDATE=1 node --import tsx --test
// test/raft/golden.test.ts` rewrites the files; review the diff like any other code change.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { formatScenario, GoldenDriver, parseScenario } from './golden/driver.ts';

const DIR = fileURLToPath(new URL('./golden/testdata', import.meta.url));
const update = process.env.GOLDEN_UPDATE === '1';

describe('raft golden traces', () => {
  const files = readdirSync(DIR)
    .filter((f) => f.endsWith('.txt'))
    .sort();
  it('has scenario files', () => assert.ok(files.length >= 5, `only ${files.length} scenario files`));
  for (const file of files) {
    it(file, () => {
      const path = join(DIR, file);
      const blocks = parseScenario(readFileSync(path, 'utf8'));
      const d = new GoldenDriver();
      const actual = blocks.map((b) => ({ ...b, expected: d.run(b.command) }));
      if (update) {
        writeFileSync(path, formatScenario(actual));
        return;
      }
      for (let i = 0; i < blocks.length; i++) {
        assert.equal(actual[i]!.expected, blocks[i]!.expected, `${file}:${blocks[i]!.line}: \`${blocks[i]!.command}\` printed a different trace`);
      }
    });
  }
});

describe('golden trace format', () => {
  it('round-trips a scenario file and rejects a command without its separator', () => {
    const text = '# c\nnodes 3\n----\n\nstatus n1\n----\nn1: follower\n';
    assert.equal(formatScenario(parseScenario(text)), text);
    assert.throws(() => parseScenario('nodes 3\nstatus\n'), /line 2: expected "----"/);
  });
  it('refuses unknown commands', () => {
    assert.throws(() => new GoldenDriver().run('frobnicate n1'), /unknown command "frobnicate"/);
  });
});
