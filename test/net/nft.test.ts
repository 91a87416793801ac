// The nftables plumbing (overlay-net/nft.ts): names, the planner, the listing parser and comparison, then,
// in a scratch namespace, the applier (errors with nft's message and line, sysctls inside a namespace) and
// the table programmer (incremental updates, fallback, verify after tampering, compaction).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { lbTable } from '../../overlay-net/lb.ts';
import { hostPortTable, meshIngressTable, meshNodeTable } from '../../overlay-net/mesh.ts';
import {
  canonicalRule,
  deadRules,
  diffTable,
  emptyTable,
  isIpv4,
  naturalCompare,
  nftName,
  NftApplier,
  NftError,
  parseNftListing,
  planTableChanges,
  renderCompaction,
  renderTable,
  shareUnchanged,
  singleLineCommands,
  TableProgrammer,
  type NftTable,
} from '../../overlay-net/nft.ts';
import { endpoint, kernelSkip, Lab, net, service, view } from './netlab.ts';

function table(chainRules: Record<string, string[]>, elements: Record<string, string> = {}): NftTable {
  const t = emptyTable('shoal-test');
  t.sets.set('m', { kind: 'map', decl: ['type ipv4_addr : verdict'], elements: new Map(Object.entries(elements)) });
  t.chains.set('out', { hook: 'type nat hook output priority -100; policy accept;', rules: ['ip daddr vmap @m'] });
  for (const [name, rules] of Object.entries(chainRules)) t.chains.set(name, { rules, terminal: true });
  return t;
}

describe('nft model', () => {
  test('nftName keeps safe ids and hashes the rest, distinctly', () => {
    assert.equal(nftName('k2x9q0abc'), 'k2x9q0abc');
    const a = nftName('my-net.1');
    const b = nftName('my-net_1');
    assert.match(a, /^h[0-9a-z]+$/);
    assert.notEqual(a, b);
    assert.equal(nftName('x'.repeat(65)).startsWith('h'), true);
  });

  test('naturalCompare orders addresses and ports numerically', () => {
    assert.deepEqual(['10.0.0.10', '10.0.0.9', '9.0.0.1', '10.0.1.0'].sort(naturalCompare), ['9.0.0.1', '10.0.0.9', '10.0.0.10', '10.0.1.0']);
    assert.deepEqual(['8080', '53', '443'].sort(naturalCompare), ['53', '443', '8080']);
  });

  test('isIpv4 accepts dotted quads only', () => {
    for (const ok of ['10.0.0.1', '0.0.0.0', '255.255.255.255']) assert.equal(isIpv4(ok), true, ok);
    for (const bad of ['', '10.0.0', '10.0.0.256', '10.0.0.1/24', 'a.b.c.d', '10..0.1', '1.2.3.4.5', '1234.1.1.1', 'host'])
      assert.equal(isIpv4(bad), false, bad);
  });

  test('singleLineCommands: planner scripts qualify for the session, table bodies do not', () => {
    assert.deepEqual(singleLineCommands('add chain ip t c\nadd rule ip t c dnat to 10.0.0.1\n'), ['add chain ip t c', 'add rule ip t c dnat to 10.0.0.1']);
    assert.deepEqual(singleLineCommands('add chain ip t b { type nat hook output priority -100; policy accept; }\n'), [
      'add chain ip t b { type nat hook output priority -100; policy accept; }',
    ]);
    assert.equal(singleLineCommands('table ip t\ndelete table ip t\ntable ip t {\n}\n'), null);
    assert.equal(singleLineCommands('add element ip t m { 1 : goto a,\n 2 : goto b }\n'), null);
    assert.equal(singleLineCommands(''), null);
  });

  test('shareUnchanged keeps the previous objects of equal chains and sets', () => {
    const a = table({ x: ['dnat to 10.0.0.5'], y: ['dnat to 10.0.0.6'] }, { '10.0.0.2': 'goto x' });
    const b = table({ x: ['dnat to 10.0.0.5'], y: ['dnat to 10.0.0.7'] }, { '10.0.0.2': 'goto x' });
    const s = shareUnchanged(a, b);
    assert.equal(s.chains.get('x'), a.chains.get('x'));
    assert.notEqual(s.chains.get('y'), a.chains.get('y'));
    assert.equal(s.sets.get('m'), a.sets.get('m'));
    assert.equal(planTableChanges(a, s)!.script, 'insert rule ip shoal-test y dnat to 10.0.0.7\n');
  });

  test('parseNftListing reads sets, maps over several lines, base and regular chains', () => {
    const p = parseNftListing(`table ip shoal-lb {
	map vips {
		type ipv4_addr : verdict
		elements = { 10.0.0.2 : goto svc_a, 10.0.0.3 : goto svc_b,
			     10.0.0.4 : goto svc_c }
	}

	set ports {
		type inet_service
		elements = { 53, 8080 }
	}

	set empty {
		type inet_service
	}

	chain output {
		type nat hook output priority -100; policy accept;
		ip daddr vmap @vips
	}

	chain svc_a {
		dnat to numgen random mod 2 map { 1 : 10.0.0.6, 0 : 10.0.0.5 }
	}
}
`);
    assert.equal(p.name, 'shoal-lb');
    assert.deepEqual(
      [...p.sets.get('vips')!.elements],
      [
        ['10.0.0.2', 'goto svc_a'],
        ['10.0.0.3', 'goto svc_b'],
        ['10.0.0.4', 'goto svc_c'],
      ],
    );
    assert.deepEqual([...p.sets.get('ports')!.elements.keys()], ['53', '8080']);
    assert.equal(p.sets.get('empty')!.elements.size, 0);
    assert.equal(p.chains.get('output')!.hook, 'type nat hook output priority -100; policy accept;');
    assert.deepEqual(p.chains.get('svc_a')!.rules, ['dnat to numgen random mod 2 map { 1 : 10.0.0.6, 0 : 10.0.0.5 }']);
    assert.equal(canonicalRule(p.chains.get('svc_a')!.rules[0]!), 'dnat to numgen random mod 2 map { 0 : 10.0.0.5, 1 : 10.0.0.6 }');
    assert.throws(() => parseNftListing('garbage'), /expected a table/);
  });

  test('diffTable: element, chain and rule differences; dead rules below a terminal chain are not one', () => {
    const want = table({ a: ['dnat to 10.0.0.5'] }, { '10.0.0.2': 'goto a' });
    const listing = (rulesA: string[], els: string, extra = '') =>
      parseNftListing(`table ip shoal-test {
	map m {
		type ipv4_addr : verdict
		${els}
	}
	chain out {
		type nat hook output priority -100; policy accept;
		ip daddr vmap @m
	}
	chain a {
${rulesA.map((r) => `\t\t${r}`).join('\n')}
	}${extra}
}`);
    assert.equal(diffTable(listing(['dnat to 10.0.0.5'], 'elements = { 10.0.0.2 : goto a }'), want), null);
    const dead = listing(['dnat to 10.0.0.5', 'numgen random mod 2 0 dnat to 10.0.0.6', 'dnat to 10.0.0.5'], 'elements = { 10.0.0.2 : goto a }');
    assert.equal(diffTable(dead, want), null);
    assert.equal(deadRules(dead, want), 2);
    assert.match(diffTable(listing(['dnat to 10.0.0.6'], 'elements = { 10.0.0.2 : goto a }'), want)!, /chain a, rule 1/);
    assert.match(diffTable(listing(['dnat to 10.0.0.5'], ''), want)!, /0 elements/);
    assert.match(diffTable(listing(['dnat to 10.0.0.5'], 'elements = { 10.0.0.2 : goto b }'), want)!, /maps to goto b/);
    assert.match(diffTable(listing(['dnat to 10.0.0.5'], 'elements = { 10.0.0.2 : goto a }', '\n\tchain zz {\n\t}'), want)!, /unexpected chain zz/);
    // A non-terminal chain must match exactly.
    const strict = table({});
    strict.chains.set('a', { rules: ['dnat to 10.0.0.5'] });
    strict.sets.get('m')!.elements.set('10.0.0.2', 'goto a');
    assert.match(diffTable(dead, strict)!, /has 3 rules, want 1/);
  });

  test('planTableChanges: ordering inside the transaction, and when only a full reload will do', () => {
    const prev = table({ a: ['dnat to 10.0.0.5'], b: ['dnat to 10.0.0.6'] }, { '10.0.0.2': 'goto a', '10.0.0.3': 'goto b' });
    const next = table({ a: ['dnat to 10.0.0.7'], c: ['dnat to 10.0.0.8'] }, { '10.0.0.2': 'goto a', '10.0.0.4': 'goto c' });
    const plan = planTableChanges(prev, next)!;
    assert.equal(
      plan.script,
      [
        'add chain ip shoal-test c',
        'insert rule ip shoal-test a dnat to 10.0.0.7',
        'add rule ip shoal-test c dnat to 10.0.0.8',
        'delete element ip shoal-test m { 10.0.0.3 }',
        'add element ip shoal-test m { 10.0.0.4 : goto c }',
        'flush chain ip shoal-test b',
        'delete chain ip shoal-test b',
        '',
      ].join('\n'),
    );
    assert.deepEqual(plan.prepended, ['a']);
    assert.equal(planTableChanges(prev, next, { mode: 'flush' })!.script.split('\n')[1], 'flush chain ip shoal-test a');
    assert.equal(planTableChanges(prev, prev)!.script, '');
    const redeclared = table({});
    redeclared.sets.get('m')!.decl = ['type inet_service : verdict'];
    assert.equal(planTableChanges(prev, redeclared), null);
    const rehooked = table({});
    rehooked.chains.get('out')!.hook = 'type nat hook prerouting priority dstnat; policy accept;';
    assert.equal(planTableChanges(prev, rehooked), null);
    assert.equal(renderCompaction(next, ['a', 'gone']), 'flush chain ip shoal-test a\nadd rule ip shoal-test a dnat to 10.0.0.7\n');
  });
});

const skip = kernelSkip();

describe('nft in the kernel', { skip }, () => {
  const lab = new Lab();
  const applier = new NftApplier();
  let ns: string;
  before(() => {
    ns = lab.addNs('scratch');
  });
  after(async () => {
    applier.close();
    await lab.close();
  });

  test('errors carry nft’s message and the failing line of the script', async () => {
    // Through the namespace's `nft -i` session (one-line commands), then through `nft -f -`.
    const bad = 'add rule ip shoal-x c ip daddr 10.0.0.1 jump nowhere';
    const script = `add table ip shoal-x\nadd chain ip shoal-x c\n${bad}\nadd chain ip shoal-x d\n`;
    for (const a of [applier, new NftApplier({ keepAliveMs: 0 })]) {
      await assert.rejects(a.apply(ns, script), (e: unknown) => {
        assert.ok(e instanceof NftError, String(e));
        assert.equal(e.line, 3, e.message);
        assert.equal(e.scriptLine, bad);
        assert.match(e.message, /No such file or directory \(script line 3: add rule ip shoal-x c ip daddr 10\.0\.0\.1 jump nowhere\)/);
        assert.equal(e.netns, ns);
        return true;
      });
      // Nothing of the failed transaction was applied.
      assert.equal(await a.listTable(ns, 'ip', 'shoal-x'), null);
    }
    // A syntax error in a multi-line script (always `nft -f -`).
    await assert.rejects(applier.apply(ns, 'table ip shoal-x {\n\tchain c {\n\t\tbogus\n\t}\n}\n'), /syntax error.*script line 3: bogus/);
    // The session goes on after an error.
    await applier.apply(ns, 'add table ip shoal-y\n');
    assert.notEqual(await applier.listTable(ns, 'ip', 'shoal-y'), null);
    await applier.apply(ns, 'delete table ip shoal-y\n');
    assert.deepEqual(applier.sessionNamespaces, [ns]);
    applier.closeSession(ns);
    assert.deepEqual(applier.sessionNamespaces, []);
    await assert.rejects(applier.apply('/run/netns/shoal-nft-does-not-exist', 'add table ip t\n'), /nsenter|No such file/);
  });

  test('a session never outlives its namespace’s identity: a namespace made again at the same path gets a new one', async () => {
    const path = lab.addNs('again');
    await applier.apply(path, 'add table ip shoal-a\n');
    assert.notEqual(await applier.listTable(path, 'ip', 'shoal-a'), null);
    lab.addNs('again'); // deletes and recreates it
    await applier.apply(path, 'add table ip shoal-b\n');
    assert.equal(await applier.listTable(path, 'ip', 'shoal-a'), null);
    assert.notEqual(await applier.listTable(path, 'ip', 'shoal-b'), null);
    applier.closeSession(path);
  });

  test('an nft -i that does not answer as expected: the call fails, later ones use nft -f', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-nft-fake-'));
    try {
      const fake = join(dir, 'nft');
      writeFileSync(fake, '#!/bin/sh\nif [ "$1" = "-i" ]; then exec cat >/dev/null; fi\nexec nft "$@"\n', { mode: 0o755 });
      const a = new NftApplier({ nft: fake, sessionTimeoutMs: 300 });
      await assert.rejects(a.apply(ns, 'add table ip shoal-f\n'), /no answer in 300 ms/);
      assert.deepEqual(a.sessionNamespaces, []);
      await a.apply(ns, 'add table ip shoal-f\n');
      assert.notEqual(await a.listTable(ns, 'ip', 'shoal-f'), null);
      assert.deepEqual(a.sessionNamespaces, []);
      await a.deleteTable(ns, 'ip', 'shoal-f');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('sysctls are read and written inside the namespace', async () => {
    assert.equal(await applier.readSysctl(ns, 'net.ipv4.ip_forward'), '0');
    await applier.writeSysctl(ns, 'net.ipv4.ip_forward', '1');
    assert.equal(await applier.readSysctl(ns, 'net.ipv4.ip_forward'), '1');
    assert.equal(lab.exec('scratch', 'cat', '/proc/sys/net/ipv4/ip_forward').trim(), '1');
    await assert.rejects(applier.writeSysctl(ns, '../../etc/passwd', 'x'), /bad sysctl/);
  });

  test('what the renderers write is what nft lists back (lb, mesh, host ports; many elements, no backend)', async () => {
    const ing = net('ing', '10.255.0.0/16', { ingress: true });
    const app = net('app', '10.1.0.0/16');
    const svcs = [];
    const eps = [];
    for (let i = 0; i < 40; i++) {
      svcs.push(
        service(`s${i}`, { app: `10.1.1.${i + 1}`, ing: `10.255.1.${i + 1}` }, [
          { protocol: i % 2 ? 'udp' : 'tcp', targetPort: 80, publishedPort: 30000 + i, publishMode: 'ingress' },
          { protocol: 'tcp', targetPort: 81, publishedPort: 31000 + i, publishMode: 'host' },
        ]),
      );
      for (let j = 0; j < i % 5; j++) {
        eps.push(endpoint(`s${i}`, 'app', `t${i}_${j}`, `10.1.${2 + j}.${i + 1}`, j !== 3));
        eps.push(endpoint(`s${i}`, 'ing', `t${i}_${j}`, `10.255.${2 + j}.${i + 1}`));
      }
    }
    const v = view([ing, app], svcs, eps, '10.255.0.2');
    const gws = new Map(eps.filter((_, k) => k % 3 === 0).map((e, k) => [e.taskId, `172.31.0.${k + 2}`]));
    for (const t of [lbTable(v, ['app', 'ing']), meshNodeTable(v), meshIngressTable(v), hostPortTable(v, gws)]) {
      await applier.apply(ns, renderTable(t));
      const listed = await applier.listTable(ns, 'ip', t.name);
      assert.equal(diffTable(parseNftListing(listed!), t), null, t.name);
      await applier.deleteTable(ns, 'ip', t.name);
      assert.equal(await applier.listTable(ns, 'ip', t.name), null);
    }
  });

  test('TableProgrammer: full, incremental, unchanged; fallback to a full load; verify; compaction by timer', async () => {
    const fallbacks: Error[] = [];
    // The compaction delay must outlast the listing below, which took more than 100 ms at load 36.
    const tp = new TableProgrammer({ applier, netns: ns, compactAfterMs: 2000, onFallback: (e) => fallbacks.push(e) });
    const t1 = table({ a: ['dnat to 10.0.0.5'] }, { '10.0.0.2': 'goto a' });
    const t2 = table({ a: ['numgen random mod 2 0 dnat to 10.0.0.5', 'dnat to 10.0.0.6'] }, { '10.0.0.2': 'goto a' });
    assert.equal(await tp.set(t1), 'full');
    assert.equal(await tp.set(t1), 'unchanged');
    assert.equal(await tp.set(t2), 'incremental');
    assert.deepEqual(tp.dirtyChains, ['a']);
    let listing = parseNftListing((await applier.listTable(ns, 'ip', 'shoal-test'))!);
    assert.deepEqual(listing.chains.get('a')!.rules, ['numgen random mod 2 0 dnat to 10.0.0.5', 'dnat to 10.0.0.6', 'dnat to 10.0.0.5']);
    assert.deepEqual(await tp.verify(), { ok: true });
    // The compaction timer removes the dead rule.
    const deadline = Date.now() + 20_000;
    while (tp.dirtyChains.length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    listing = parseNftListing((await applier.listTable(ns, 'ip', 'shoal-test'))!);
    assert.deepEqual(listing.chains.get('a')!.rules, t2.chains.get('a')!.rules);
    // Someone deletes an element by hand: the next incremental update (which deletes it too) fails, a full load follows.
    lab.exec('scratch', 'nft', 'delete', 'element', 'ip', 'shoal-test', 'm', '{ 10.0.0.2 }');
    assert.equal(await tp.set(table({ a: ['dnat to 10.0.0.7'] }, { '10.0.0.9': 'goto a' })), 'full');
    assert.equal(fallbacks.length, 1);
    assert.ok(fallbacks[0] instanceof NftError);
    assert.deepEqual(await tp.verify(), { ok: true });
    // `nft flush ruleset`: verify reloads.
    lab.exec('scratch', 'nft', 'flush', 'ruleset');
    const v = await tp.verify();
    assert.deepEqual(v, { ok: false, reason: 'table ip shoal-test is missing' });
    assert.deepEqual(await tp.verify(), { ok: true });
    await tp.remove('ip', 'shoal-test');
    assert.equal(await applier.listTable(ns, 'ip', 'shoal-test'), null);
    tp.dispose();
  });
});
