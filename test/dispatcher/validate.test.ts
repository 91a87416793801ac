// The dispatcher's message validator: every message type, a table of bad inputs (each must be refused
// with the code that names its problem), per-entry rejection inside batches, and clean output (unknown
// fields never reach the store).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolViolation } from '../../transport/session.ts';
import { MESSAGE_LIMITS, validateAgentMessage } from '../../manager/dispatcher/validate.ts';
import { StatusQueue } from '../../manager/dispatcher/status-queue.ts';

const desc = () => ({
  hostname: 'w1',
  platform: { os: 'linux', arch: 'x64' },
  resources: { nanoCpus: 4e9, memoryBytes: 8 * 2 ** 30 },
  engineVersion: 'shoal-0.1.0',
  addr: '10.0.0.5',
});
const upd = (o: Record<string, unknown> = {}) => ({ taskId: 'abc123', state: 'running', message: 'started', timestamp: '2026-01-01T00:00:00.000Z', ...o });

function refused(v: unknown): ProtocolViolation {
  try {
    validateAgentMessage(v);
  } catch (e) {
    assert.ok(e instanceof ProtocolViolation, `expected ProtocolViolation, got ${String(e)}`);
    return e;
  }
  assert.fail(`accepted ${JSON.stringify(v).slice(0, 200)}`);
}

describe('dispatcher/validate: whole messages', () => {
  const bad: [string, unknown, string][] = [
    ['not an object', 42, 'bad-message'],
    ['null', null, 'bad-message'],
    ['an array', [{ t: 'hb' }], 'bad-message'],
    ['no t', { x: 1 }, 'bad-message'],
    ['t not a string', { t: 7 }, 'bad-message'],
    ['unknown type', { t: 'rm -rf' }, 'unknown-type'],
    ['hello without description', { t: 'hello' }, 'bad-field'],
    ['hello description a string', { t: 'hello', description: 'x' }, 'bad-field'],
    ['hello hostname too long', { t: 'hello', description: { ...desc(), hostname: 'a'.repeat(300) } }, 'too-long'],
    ['hello hostname with spaces', { t: 'hello', description: { ...desc(), hostname: 'db 1' } }, 'bad-field'],
    ['hello hostname with escape', { t: 'hello', description: { ...desc(), hostname: 'x\u001b[2J' } }, 'bad-field'],
    ['hello hostname empty', { t: 'hello', description: { ...desc(), hostname: '' } }, 'bad-field'],
    ['hello hostname a number', { t: 'hello', description: { ...desc(), hostname: 5 } }, 'bad-field'],
    ['hello platform missing', { t: 'hello', description: { ...desc(), platform: undefined } }, 'bad-field'],
    ['hello os too long', { t: 'hello', description: { ...desc(), platform: { os: 'l'.repeat(100), arch: 'x' } } }, 'too-long'],
    ['hello resources missing', { t: 'hello', description: { ...desc(), resources: null } }, 'bad-field'],
    ['hello cpus negative', { t: 'hello', description: { ...desc(), resources: { nanoCpus: -1, memoryBytes: 1 } } }, 'bad-field'],
    ['hello cpus huge', { t: 'hello', description: { ...desc(), resources: { nanoCpus: 1e300, memoryBytes: 1 } } }, 'bad-field'],
    ['hello memory a string', { t: 'hello', description: { ...desc(), resources: { nanoCpus: 1, memoryBytes: '8G' } } }, 'bad-field'],
    ['hello memory NaN-ish', { t: 'hello', description: { ...desc(), resources: { nanoCpus: 1, memoryBytes: null } } }, 'bad-field'],
    ['hello addr with a space', { t: 'hello', description: { ...desc(), addr: '1.2.3.4 evil' } }, 'bad-field'],
    ['hello engineVersion object', { t: 'hello', description: { ...desc(), engineVersion: {} } }, 'bad-field'],
    ['hello features a string', { t: 'hello', description: desc(), features: 'assignment-changes' }, 'bad-field'],
    ['hello features with a number', { t: 'hello', description: desc(), features: ['assignment-changes', 7] }, 'bad-field'],
    ['hello features too many', { t: 'hello', description: desc(), features: new Array(MESSAGE_LIMITS.features + 1).fill('x') }, 'too-many'],
    ['hello feature name too long', { t: 'hello', description: desc(), features: ['f'.repeat(MESSAGE_LIMITS.featureName + 1)] }, 'too-long'],
    ['renew csr missing', { t: 'renew' }, 'bad-field'],
    ['renew csr not PEM', { t: 'renew', csr: 'hello' }, 'bad-field'],
    ['renew csr huge', { t: 'renew', csr: '-----BEGIN ' + 'A'.repeat(20_000) }, 'too-long'],
    ['manager-up without advertise', { t: 'manager-up' }, 'bad-field'],
    ['manager-up without port', { t: 'manager-up', advertise: 'host' }, 'bad-field'],
    ['manager-up port 0', { t: 'manager-up', advertise: 'host:0' }, 'bad-field'],
    ['manager-up port too big', { t: 'manager-up', advertise: 'host:70000' }, 'bad-field'],
    ['manager-up with whitespace', { t: 'manager-up', advertise: 'a b:1' }, 'bad-field'],
    ['status updates not an array', { t: 'status', updates: {} }, 'bad-field'],
    ['status with too many updates', { t: 'status', updates: new Array(MESSAGE_LIMITS.statusUpdates + 1).fill(upd()) }, 'too-many'],
    ['usage at missing', { t: 'usage', tasks: {} }, 'bad-field'],
    ['usage at negative', { t: 'usage', at: -5, tasks: {} }, 'bad-field'],
    ['usage tasks an array', { t: 'usage', at: 1, tasks: [] }, 'bad-field'],
    ['log without req', { t: 'log', lines: [] }, 'bad-field'],
    ['log req a number', { t: 'log', req: 5, lines: [] }, 'bad-field'],
    ['log req too long', { t: 'log', req: 'r'.repeat(65), lines: [] }, 'too-long'],
    ['exec-result req empty', { t: 'exec-result', req: '', exitCode: 0 }, 'bad-field'],
    ['exec-output without req', { t: 'exec-output', stream: 'stdout', data: '', seq: 0 }, 'bad-field'],
  ];
  for (const [what, input, code] of bad) {
    it(`refuses ${what} (${code})`, () => {
      const e = refused(input);
      assert.equal(e.code, code, e.message);
      assert.ok(e.message.length > 0 && e.message.length < 300, 'a short message naming the problem');
    });
  }

  it("a hello's features: known names kept once, unknown ones dropped, none when absent", () => {
    const m = validateAgentMessage({ t: 'hello', description: desc(), features: ['from-the-future', 'assignment-changes', 'assignment-changes'] });
    assert.deepEqual((m as { features?: string[] }).features, ['assignment-changes']);
    assert.equal('features' in validateAgentMessage({ t: 'hello', description: desc() }), false);
  });

  it('accepts each valid message type and keeps only known fields', () => {
    const hello = validateAgentMessage({
      t: 'hello',
      description: { ...desc(), evil: 'x'.repeat(1000), platform: { os: 'linux', arch: 'x64', more: 1 } },
      extra: 1,
    });
    assert.deepEqual(hello, { t: 'hello', description: desc() });
    assert.deepEqual(validateAgentMessage({ t: 'hb', junk: [1, 2] }), { t: 'hb' });
    assert.deepEqual(validateAgentMessage({ t: 'renew', csr: '-----BEGIN CERTIFICATE REQUEST-----\n…' }), {
      t: 'renew',
      csr: '-----BEGIN CERTIFICATE REQUEST-----\n…',
    });
    assert.deepEqual(validateAgentMessage({ t: 'manager-up', advertise: '10.0.0.2:2377' }), { t: 'manager-up', advertise: '10.0.0.2:2377' });
    assert.equal(validateAgentMessage({ t: 'log-end', req: 'abcd' }).t, 'log-end');
    assert.equal(validateAgentMessage({ t: 'hello', description: { ...desc(), addr: '[fd00::1]' } }).t, 'hello');
  });
});

describe('dispatcher/validate: batches are checked per entry', () => {
  it('a status batch keeps its good updates and returns each bad one with its reason', () => {
    const m = validateAgentMessage({
      t: 'status',
      updates: [
        upd({ taskId: 'good1' }),
        null,
        upd({ state: 'bogus' }),
        upd({ taskId: 5 }),
        upd({ taskId: '../../etc' }),
        upd({ taskId: 'x'.repeat(65) }),
        upd({ message: 7 }),
        upd({ timestamp: 'yesterday' }),
        upd({ exitCode: 1.5 }),
        upd({ err: {} }),
        'a string',
        upd({ taskId: 'good2', state: 'failed', exitCode: 137, err: 'killed', junk: 'dropped' }),
      ],
    });
    assert.equal(m.t, 'status');
    if (m.t !== 'status') return;
    assert.deepEqual(
      m.updates.map((u) => u.taskId),
      ['good1', 'good2'],
    );
    assert.deepEqual(m.updates[1], {
      taskId: 'good2',
      state: 'failed',
      message: 'started',
      timestamp: '2026-01-01T00:00:00.000Z',
      err: 'killed',
      exitCode: 137,
    });
    assert.deepEqual(
      m.rejected.map((v) => v.code),
      ['bad-update', 'bad-state', 'bad-task-id', 'bad-task-id', 'bad-task-id', 'bad-update', 'bad-update', 'bad-update', 'bad-update', 'bad-update'],
    );
    assert.match(m.rejected[0]!.message, /status\.updates\[1\]/);
  });

  it('long status text is cut, not refused', () => {
    const m = validateAgentMessage({ t: 'status', updates: [upd({ message: 'm'.repeat(10_000), err: 'e'.repeat(10_000) })] });
    if (m.t !== 'status') return assert.fail();
    assert.equal(m.updates[0]!.message.length, MESSAGE_LIMITS.statusText);
    assert.equal(m.updates[0]!.err!.length, MESSAGE_LIMITS.statusText);
  });

  it('a usage report keeps its good entries', () => {
    const m = validateAgentMessage({
      t: 'usage',
      at: 1000,
      tasks: { a: { cpuNanos: 1, memoryBytes: 2 }, b: { cpuNanos: -1, memoryBytes: 2 }, c: 'x', 'bad id': { cpuNanos: 1, memoryBytes: 1 } },
    });
    if (m.t !== 'usage') return assert.fail();
    assert.deepEqual(m.tasks, { a: { cpuNanos: 1, memoryBytes: 2 } });
    assert.equal(m.rejected.length, 3);
  });
});

describe('dispatcher/status-queue', () => {
  const u = (taskId: string, state: 'running' | 'starting' | 'failed') => ({ taskId, state, message: '', timestamp: 't' });

  it('coalesces by task (furthest state wins), refuses going back, and bounds each node', () => {
    const q = new StatusQueue(2);
    assert.equal(q.push('n1', u('a', 'starting')), 'queued');
    assert.equal(q.push('n1', u('a', 'running')), 'coalesced');
    assert.equal(q.push('n1', u('a', 'starting')), 'stale');
    assert.equal(q.push('n1', u('b', 'running')), 'queued');
    assert.equal(q.push('n1', u('c', 'running')), 'full', 'a full node refuses new tasks');
    assert.equal(q.push('n1', u('b', 'failed')), 'coalesced', 'but still takes news of queued ones');
    assert.equal(q.push('n2', u('c', 'running')), 'queued', "another node's queue is its own");
    assert.equal(q.size, 3);
    const out = q.drain();
    assert.deepEqual(
      out.map((x) => `${x.nodeId}:${x.u.taskId}:${x.u.state}`),
      ['n1:a:running', 'n1:b:failed', 'n2:c:running'],
    );
    assert.equal(q.size, 0);
    assert.deepEqual(q.drain(), []);
  });
});
