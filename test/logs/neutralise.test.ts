// What a task prints, or a node calls itself, reaches the admin's terminal with its control characters
// made visible (cli/logs.ts neutralise): no cursor moves, window titles or 8-bit CSI sequences.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { neutralise } from '../../cli/logs.ts';

describe('neutralise', () => {
  it('shows ESC, BEL, CR, DEL and C1 controls as \\xNN and keeps text, tabs and non-ASCII', () => {
    assert.equal(neutralise('\x1b]0;pwned\x07red\x1b[31m'), '\\x1b]0;pwned\\x07red\\x1b[31m');
    assert.equal(neutralise('a\rb\x7fc\u009bd'), 'a\\x0db\\x7fc\\x9bd');
    assert.equal(neutralise('tab\there é 😀'), 'tab\there é 😀');
  });
});
