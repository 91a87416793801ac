// The revocation rules of manager/ca/revocation.ts: what removal, demotion, role-changing renewals and
// admin revocation put on the deny list, and what each endpoint class is refused by.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AdminError,
  MAX_CERT_HISTORY,
  addAdmin,
  deniedFor,
  findAdmin,
  pruneAdmins,
  recordIssued,
  renewAdmin,
  revokeAdmin,
  restoreOnPromote,
  revokeOnDemote,
  revokeOnRemove,
  revokeOnRoleChange,
  serialsOf,
  type DenyList,
} from '../../manager/ca/revocation.ts';

const NOW = new Date('2026-12-06T00:00:00Z');
const later = (days: number) => new Date(NOW.getTime() + days * 86_400_000);
const empty = (): DenyList => ({ removedNodes: [], revokedSerials: [] });

describe('certificate records', () => {
  it('keeps earlier unexpired certificates, newest last, bounded', () => {
    let rec = recordIssued(undefined, { serial: 'a1', notAfter: later(90) }, 'manager', NOW);
    assert.deepEqual(rec, { serial: 'a1', notAfter: later(90).toISOString(), role: 'manager' });
    rec = recordIssued(rec, { serial: 'a2', notAfter: later(91) }, 'manager', NOW);
    assert.deepEqual(serialsOf(rec), ['a2', 'a1']);
    for (let i = 3; i < 20; i++) rec = recordIssued(rec, { serial: `a${i}`, notAfter: later(90 + i) }, 'manager', NOW);
    assert.equal(rec.history!.length, MAX_CERT_HISTORY);
    assert.equal(rec.serial, 'a19');
  });

  it('forgets expired certificates', () => {
    const rec = recordIssued({ serial: 'old', notAfter: later(-1).toISOString(), role: 'manager' }, { serial: 'new', notAfter: later(90) }, 'manager', NOW);
    assert.deepEqual(serialsOf(rec), ['new']);
  });
});

describe('deny list', () => {
  const managerRec = recordIssued(
    recordIssued(undefined, { serial: 'm1', notAfter: later(90) }, 'manager', NOW),
    { serial: 'm2', notAfter: later(91) },
    'manager',
    NOW,
  );

  it('demotion refuses the manager certificates for manager-only endpoints, not for the dispatcher', () => {
    const deny = revokeOnDemote(empty(), managerRec);
    assert.deepEqual(deny.demotedSerials, ['m2', 'm1']);
    assert.ok(deniedFor(deny, ['manager']).has('m1'));
    assert.ok(deniedFor(deny, ['manager']).has('m2'));
    assert.ok(!deniedFor(deny, ['worker', 'manager']).has('m1'));
    assert.ok(!deniedFor(deny, ['admin']).has('m9'));
  });

  it('a renewal into the worker role revokes the manager certificates everywhere', () => {
    const demoted = revokeOnDemote(empty(), managerRec);
    const deny = revokeOnRoleChange(demoted, managerRec, 'worker');
    assert.deepEqual(deny.revokedSerials, ['m2', 'm1']);
    assert.deepEqual(deny.demotedSerials, []);
    assert.ok(deniedFor(deny, ['worker', 'manager']).has('m1'));
  });

  it('a renewal in the same role revokes nothing (the old certificate lives until it expires)', () => {
    const deny = empty();
    assert.equal(revokeOnRoleChange(deny, managerRec, 'manager'), deny);
    assert.equal(revokeOnDemote(deny, { serial: 'w1', notAfter: later(9).toISOString(), role: 'worker' }), deny);
  });

  it('a promotion before the demoted node renewed makes its manager certificate work again', () => {
    const demoted = revokeOnDemote(empty(), managerRec);
    assert.deepEqual(restoreOnPromote(demoted, managerRec).demotedSerials, []);
    const renewed = recordIssued(managerRec, { serial: 'w1', notAfter: later(90) }, 'worker', NOW);
    const revoked = revokeOnRoleChange(demoted, managerRec, 'worker');
    assert.equal(restoreOnPromote(revoked, renewed), revoked, 'a node that renewed as a worker gets a new manager certificate instead');
  });

  it('removal denies the node id and every known serial', () => {
    const deny = revokeOnRemove(empty(), 'node-1', managerRec);
    assert.deepEqual(deny.removedNodes, ['node-1']);
    assert.deepEqual(deny.revokedSerials, ['m2', 'm1']);
    for (const roles of [['worker', 'manager'], ['manager'], ['admin']]) assert.ok(deniedFor(deny, roles).has('node-1'));
  });
});

describe('admin certificates', () => {
  it('are recorded, renewed, found by name or serial, revoked with every serial', () => {
    let admins = addAdmin([], { name: 'alice', serial: 's1', notAfter: later(365) }, NOW);
    admins = addAdmin(admins, { name: 'bob', serial: 's2', notAfter: later(365) }, NOW);
    assert.throws(
      () => addAdmin(admins, { name: 'alice', serial: 's3', notAfter: later(365) }, NOW),
      (e: unknown) => e instanceof AdminError && e.code === 'EXISTS',
    );
    assert.throws(
      () => addAdmin(admins, { name: '../x', serial: 's3', notAfter: later(365) }, NOW),
      (e: unknown) => e instanceof AdminError && e.code === 'INVALID',
    );
    admins = renewAdmin(admins, 'alice', { serial: 's4', notAfter: later(400) }, NOW);
    assert.equal(findAdmin(admins, 'alice').serial, 's4');
    assert.equal(findAdmin(admins, 's1').name, 'alice');
    assert.equal(findAdmin(admins, 'S2').name, 'bob');
    assert.throws(
      () => findAdmin(admins, 'carol'),
      (e: unknown) => e instanceof AdminError && e.code === 'NOT_FOUND',
    );
    const r = revokeAdmin(admins, empty(), 'alice');
    assert.deepEqual(r.deny.revokedSerials, ['s4', 's1']);
    assert.equal(findAdmin(r.admins, 'alice').revoked, true);
    assert.equal(findAdmin(r.admins, 'bob').revoked, false);
    // A revoked name may be issued again.
    assert.equal(addAdmin(r.admins, { name: 'alice', serial: 's5', notAfter: later(30) }, NOW).find((a) => a.name === 'alice')!.serial, 's5');
  });

  it('pruning drops expired records', () => {
    const admins = addAdmin([], { name: 'old', serial: 'x', notAfter: later(1) }, NOW);
    assert.deepEqual(pruneAdmins(admins, later(2)), []);
  });
});
