// The value formats of compose files (durations, sizes, CPUs) and the shell-style split of string
// commands, as pure functions.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseBytes, parseCpus, parseDuration } from '../../stack/compose/units.ts';
import { ShellSplitError, shellSplit } from '../../stack/compose/shell.ts';

const value = (r: ReturnType<typeof parseDuration>) => (r.ok ? r.value : r.message);

describe('compose units', () => {
  it('durations → ms', () => {
    const cases: [string | number, number][] = [
      ['10s', 10_000],
      ['1m30s', 90_000],
      ['1.5h', 5_400_000],
      ['500ms', 500],
      ['2h45m', 9_900_000],
      ['0', 0],
      [0, 0],
      ['0s', 0],
      ['100us', 1],
      ['+5s', 5000],
    ];
    for (const [input, want] of cases) assert.equal(value(parseDuration(input)), want, String(input));
    for (const bad of ['10', 'ten', '-5s', '5 s', '', 'h', 7]) assert.equal(parseDuration(bad).ok, false, String(bad));
  });

  it('sizes → bytes (binary units, any spelling Docker takes)', () => {
    const cases: [string | number, number][] = [
      ['512m', 512 * 2 ** 20],
      ['512M', 512 * 2 ** 20],
      ['1gb', 2 ** 30],
      ['1G', 2 ** 30],
      ['100k', 102_400],
      ['1.5g', 1.5 * 2 ** 30],
      ['512MiB', 512 * 2 ** 20],
      ['1 GB', 2 ** 30],
      ['2048', 2048],
      [2048, 2048],
      ['10b', 10],
      ['1t', 2 ** 40],
    ];
    for (const [input, want] of cases) assert.equal(value(parseBytes(input)), want, String(input));
    for (const bad of ['lots', '1x', '-1m', '1ib', 1.5, '']) assert.equal(parseBytes(bad).ok, false, String(bad));
  });

  it('CPUs → nano-CPUs, exactly', () => {
    const cases: [string | number, number][] = [
      ['0.5', 500_000_000],
      [0.5, 500_000_000],
      ['2', 2_000_000_000],
      ['.25', 250_000_000],
      ['0.001', 1_000_000],
      ['1.000000001', 1_000_000_001],
    ];
    for (const [input, want] of cases) assert.equal(value(parseCpus(input)), want, String(input));
    for (const bad of ['half', '-1', '1.0000000001', '']) assert.equal(parseCpus(bad).ok, false, String(bad));
  });
});

describe('shellSplit', () => {
  it('splits like a shell without expanding', () => {
    const cases: [string, string[]][] = [
      ['nginx -g "daemon off;"', ['nginx', '-g', 'daemon off;']],
      ["sh -c 'echo $HOME && ls'", ['sh', '-c', 'echo $HOME && ls']],
      ['a\\ b c', ['a b', 'c']],
      ['"a \\"quoted\\" word"', ['a "quoted" word']],
      ['  spaced   out  ', ['spaced', 'out']],
      ['multi\nline\tcommand', ['multi', 'line', 'command']],
      ['run # a comment', ['run']],
      ['x#y', ['x#y']],
      ['""', ['']],
      ['', []],
    ];
    for (const [input, want] of cases) assert.deepEqual(shellSplit(input), want, input);
  });

  it('refuses unterminated quotes and a trailing backslash', () => {
    for (const bad of ['"open', "'open", 'end\\']) assert.throws(() => shellSplit(bad), ShellSplitError, bad);
  });
});
