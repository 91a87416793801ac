// The lab-hosts harness against real network namespaces (needs root and iproute2). Lab names carry this
// process's pid, so runs never collide with a user's lab or with each other; every lab is torn down in
// `after` hooks and by exit/signal hooks (cleanupOnExit), also when a test fails. Traffic goes only to the
// lab's own addresses.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_STATE_ROOT, Lab, LabError, type LabHost, NETNS_DIR, cleanupOnExit, labNames, procAlive, which } from '../../lab/lab.ts';

const SUFFIX = process.pid.toString(36); // ≤ 5 chars
const NAME = `t${SUFFIX}`; // the shared 3-host lab
const NAME_BIG = `b${SUFFIX}`; // 5 hosts: bring-up time and a thorough down()
const NAME_KILLED = `k${SUFFIX}`; // created by a child process that gets SIGKILLed
const NAME_SIGTERM = `s${SUFFIX}`; // created by a child process that gets SIGTERM (exit hook)
const NAME_THROW = `x${SUFFIX}`; // created by a child process that dies of an uncaught exception
const ALL = [NAME, NAME_BIG, NAME_KILLED, NAME_SIGTERM, NAME_THROW];
const LAB_TS = fileURLToPath(new URL('../../lab/lab.ts', import.meta.url));
const NODE = process.execPath;
const PORT = 7000;
const log = (s: string) => console.log(`# ${s}`);

// Echo server: prints 'listening' once bound, echoes every byte back.
const ECHO = `
const net = require('net');
const port = Number(process.argv[1]);
net.createServer((s) => { s.on('error', () => {}); s.pipe(s); }).listen(port, '0.0.0.0', () => console.log('listening ' + port));
`;
// Probe: for each host:port argument, connect, send 'ping\\n', expect it echoed; prints {target: result}.
const PROBE = `
const net = require('net');
const timeout = Number(process.env.PROBE_TIMEOUT_MS || 2000);
Promise.all(process.argv.slice(1).map((t) => new Promise((resolve) => {
  const i = t.lastIndexOf(':');
  const s = net.connect({ host: t.slice(0, i), port: Number(t.slice(i + 1)) });
  const timer = setTimeout(() => { s.destroy(); resolve([t, 'timeout']); }, timeout);
  let got = '';
  s.on('connect', () => s.write('ping\\n'));
  s.on('data', (d) => { got += d; if (got.includes('\\n')) { clearTimeout(timer); s.destroy(); resolve([t, got === 'ping\\n' ? 'ok' : 'bad:' + got]); } });
  s.on('error', (e) => { clearTimeout(timer); resolve([t, e.code || String(e)]); });
}))).then((r) => console.log(JSON.stringify(Object.fromEntries(r))));
`;

/** Waits (bounded) until `child` prints a line containing `word` on stdout. */
function waitForLine(child: ChildProcess, word: string, timeoutMs = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no '${word}' within ${timeoutMs} ms; got: ${buf}`)), timeoutMs);
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      if (buf.includes(word)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited (${code}) before '${word}'; got: ${buf}`));
    });
  });
}

async function probe(from: LabHost, targets: string[], timeoutMs = 2000): Promise<Record<string, string>> {
  const r = await from.exec(NODE, ['-e', PROBE, ...targets], {
    env: { PROBE_TIMEOUT_MS: String(timeoutMs) },
    timeoutMs: timeoutMs + 8000,
  });
  assert.equal(r.code, 0, `probe from ${from.name} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, string>;
}

/** Probe from the root namespace (this process). */
function probeRoot(target: string, port: number, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: target, port });
    const timer = setTimeout(() => {
      s.destroy();
      resolve('timeout');
    }, timeoutMs);
    let got = '';
    s.on('connect', () => s.write('ping\n'));
    s.on('data', (d) => {
      got += d.toString();
      if (got.includes('\n')) {
        clearTimeout(timer);
        s.destroy();
        resolve(got === 'ping\n' ? 'ok' : `bad:${got}`);
      }
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(e.code ?? String(e));
    });
  });
}

function startEcho(h: LabHost, port = PORT): Promise<ChildProcess> {
  const child = h.spawn(NODE, ['-e', ECHO, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return waitForLine(child, 'listening').then(() => child);
}

function labNamespaces(name: string): string[] {
  const prefix = labNames(name).prefix;
  let all: string[] = [];
  try {
    all = fs.readdirSync(NETNS_DIR);
  } catch {
    /* no /run/netns at all */
  }
  return all.filter((ns) => ns.startsWith(prefix));
}

/** Nothing of lab `name` is left: namespaces, root link, state file, state dir, the given processes. */
function assertGone(name: string, pids: number[] = [], stateRoot = DEFAULT_STATE_ROOT): void {
  const n = labNames(name, stateRoot);
  assert.deepEqual(labNamespaces(name), [], 'namespaces left');
  assert.equal(fs.existsSync(`/sys/class/net/${n.rootLink}`), false, `link ${n.rootLink} left`);
  assert.equal(fs.existsSync(n.stateFile), false, 'state file left');
  assert.equal(fs.existsSync(n.labDir), false, 'state dir left');
  const alive = pids.filter((p) => procAlive(p));
  assert.deepEqual(alive, [], 'processes left');
}

let lab: Lab | undefined;
const unregister: (() => void)[] = [];

before(async () => {
  for (const n of ALL) {
    await Lab.downByName(n, { force: true }); // leftovers of an earlier run with the same pid
    unregister.push(cleanupOnExit(n)); // exit/signal hook: remove anything named after these labs
  }
  lab = await Lab.create({ name: NAME, hosts: 3, log });
  unregister.push(cleanupOnExit(lab));
});

after(async () => {
  const reports = [];
  if (lab) reports.push(await lab.down());
  for (const n of ALL) reports.push(await Lab.downByName(n, { force: true }));
  for (const u of unregister) u();
  for (const r of reports) assert.deepEqual(r.errors, [], `teardown of ${r.name}`);
  for (const n of ALL) assertGone(n);
});

function theLab(): Lab {
  assert.ok(lab, 'lab not created');
  return lab;
}

test('create: switch, hosts, root link, addresses, directories and state file', async () => {
  const l = theLab();
  assert.match(l.subnet, /^10\.213\.\d+\.0\/24$/);
  assert.deepEqual(
    l.hosts.map((h) => [h.name, h.ns, h.ip]),
    [1, 2, 3].map((i) => [`h${i}`, `sl-${NAME}-h${i}`, l.subnet.replace(/0\/24$/, String(10 + i))]),
  );
  assert.deepEqual(labNamespaces(NAME).sort(), [`sl-${NAME}-h1`, `sl-${NAME}-h2`, `sl-${NAME}-h3`, `sl-${NAME}-sw`]);
  assert.ok(fs.existsSync(`/sys/class/net/sl-${NAME}`), 'root link');
  for (const h of l.hosts) {
    assert.ok(fs.statSync(h.dir).isDirectory(), h.dir);
    assert.equal(h.dir, path.join(DEFAULT_STATE_ROOT, NAME, h.name));
  }
  const state = JSON.parse(fs.readFileSync(l.stateFile, 'utf8')) as { status: string; hosts: unknown[]; subnet: string };
  assert.equal(state.status, 'up');
  assert.equal(state.hosts.length, 3);
  assert.equal(state.subnet, l.subnet);
  const addr = await l.host('h2').exec('ip', ['-o', '-4', 'addr', 'show', 'dev', 'eth0']);
  assert.match(addr.stdout, new RegExp(`inet ${l.host('h2').ip.replace(/\./g, '\\.')}/24`));
  const route = await l.host('h2').exec('ip', ['route', 'show', 'default']);
  assert.match(route.stdout, new RegExp(`default via ${l.gateway.replace(/\./g, '\\.')} dev eth0`));
});

test('spawn: a TCP echo server in h1 is reachable from h2 and from the root namespace at h1.ip', async () => {
  const l = theLab();
  const h1 = l.host('h1');
  const server = await startEcho(h1);
  assert.ok(server.pid);
  const state = JSON.parse(fs.readFileSync(l.stateFile, 'utf8')) as { procs: { pid: number; host: string }[] };
  assert.ok(
    state.procs.some((p) => p.pid === server.pid && p.host === 'h1'),
    'pid recorded in the state file',
  );
  const fromH2 = await probe(l.host('h2'), [`${h1.ip}:${PORT}`]);
  assert.equal(fromH2[`${h1.ip}:${PORT}`], 'ok');
  assert.equal(await probeRoot(h1.ip, PORT), 'ok');
  // Not reachable from the root namespace's loopback: the server lives in h1's namespace only.
  assert.notEqual(await probeRoot('127.0.0.1', PORT, 500), 'ok');
});

test('connectivity: every host reaches every other host and the gateway; the root ns reaches every host', async () => {
  const l = theLab();
  for (const h of l.hosts.slice(1)) await startEcho(h); // h1's runs since the previous test
  const gw = net.createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((resolve) => gw.listen(0, l.gateway, resolve));
  try {
    const gwPort = (gw.address() as net.AddressInfo).port;
    const results = await Promise.all(
      l.hosts.map((h) => probe(h, [...l.hosts.filter((o) => o !== h).map((o) => `${o.ip}:${PORT}`), `${l.gateway}:${gwPort}`])),
    );
    for (const [i, r] of results.entries()) {
      for (const [target, res] of Object.entries(r)) assert.equal(res, 'ok', `h${i + 1} → ${target}`);
    }
    for (const h of l.hosts) assert.equal(await probeRoot(h.ip, PORT), 'ok', `root → ${h.name}`);
    const ping = which('ping');
    if (ping) {
      for (const h of l.hosts) {
        const r = await l.host('h1').exec(ping, ['-c1', '-W1', h === l.host('h1') ? l.gateway : h.ip]);
        assert.equal(r.code, 0, `ping from h1: ${r.stdout}${r.stderr}`);
      }
    } else {
      log('ping not installed: connectivity checked over TCP only');
    }
  } finally {
    gw.close();
  }
});

test('spawn: the process is in the host network namespace yet sees the machine /sys/fs/cgroup', async () => {
  const l = theLab();
  const h3 = l.host('h3');
  const code = `
    const fs = require('fs'), os = require('os');
    console.log(JSON.stringify({
      cgroup: fs.readdirSync('/sys/fs/cgroup').sort(),
      ifaces: Object.keys(os.networkInterfaces()).sort(),
      ip: (os.networkInterfaces().eth0 || []).filter((a) => a.family === 'IPv4').map((a) => a.address),
      env: [process.env.SHOAL_LAB_HOST, process.env.SHOAL_LAB_IP, process.env.SHOAL_LAB_DIR, process.cwd()],
    }));`;
  const child = h3.spawn(NODE, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exitCode = await new Promise<number | null>((resolve) => child.once('close', resolve));
  assert.equal(exitCode, 0);
  const seen = JSON.parse(out) as { cgroup: string[]; ifaces: string[]; ip: string[]; env: string[] };
  const rootCgroup = fs.readdirSync('/sys/fs/cgroup').sort();
  assert.ok(rootCgroup.length > 0);
  assert.deepEqual(seen.cgroup, rootCgroup, '/sys/fs/cgroup as in the root namespace (not hidden)');
  assert.deepEqual(seen.ifaces, ['eth0', 'lo']);
  assert.deepEqual(seen.ip, [h3.ip]);
  assert.deepEqual(seen.env, ['h3', h3.ip, h3.dir, h3.dir]);
});

test('exec is bounded by its timeout; kill refuses pids the lab did not start', async () => {
  const l = theLab();
  const h1 = l.host('h1');
  const t0 = performance.now();
  const r = await h1.exec('sleep', ['30'], { timeoutMs: 200 });
  assert.equal(r.timedOut, true);
  assert.ok(performance.now() - t0 < 5000);
  assert.throws(() => h1.kill(process.pid), LabError);
  assert.throws(() => h1.kill(1), LabError);
  const child = h1.spawn('sleep', ['30'], { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  assert.ok(child.pid);
  assert.equal(h1.kill(child.pid, 'SIGKILL'), true);
  await exited;
  assert.equal(h1.kill(child.pid), false, 'already gone');
});

test('addHost / removeHost', async () => {
  const l = theLab();
  const h4 = await l.addHost();
  assert.equal(h4.name, 'h4');
  assert.ok(labNamespaces(NAME).includes(h4.ns));
  assert.ok(fs.existsSync(h4.dir));
  await startEcho(h4);
  assert.equal(await probeRoot(h4.ip, PORT), 'ok');
  assert.equal((await probe(l.host('h1'), [`${h4.ip}:${PORT}`]))[`${h4.ip}:${PORT}`], 'ok');
  // A grandchild that daemonized (reparented away from us) must go with the host too.
  const d = h4.spawn('sh', ['-c', 'sleep 300 >/dev/null 2>&1 & echo $!'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  d.stdout?.setEncoding('utf8').on('data', (s: string) => (out += s));
  await new Promise((resolve) => d.once('close', resolve));
  const orphan = Number(out.trim());
  assert.ok(procAlive(orphan));

  await l.removeHost(h4);
  assert.equal(labNamespaces(NAME).includes(h4.ns), false);
  assert.equal(fs.existsSync(h4.dir), false);
  assert.equal(procAlive(orphan), false, 'daemonized grandchild killed');
  assert.deepEqual(
    l.hosts.map((h) => h.name),
    ['h1', 'h2', 'h3'],
  );
  const state = JSON.parse(fs.readFileSync(l.stateFile, 'utf8')) as { hosts: { name: string }[] };
  assert.deepEqual(
    state.hosts.map((h) => h.name),
    ['h1', 'h2', 'h3'],
  );
  assert.notEqual(await probeRoot(h4.ip, PORT, 500), 'ok');
  const h5 = await l.addHost();
  assert.equal(h5.name, 'h5', 'indices are not reused');
  await l.removeHost('h5');
});

const firewalls = (['nft', 'iptables'] as const).filter((t) => which(t));
test('partition: blockFrom cuts h1 → h2, other hosts unaffected, unblockAll heals', {
  skip: firewalls.length === 0 ? 'neither nft nor iptables is installed (the install script adds nftables)' : false,
}, async () => {
  const l = theLab();
  const [h1, h2, h3] = [l.host('h1'), l.host('h2'), l.host('h3')];
  const target = `${h2.ip}:${PORT}`; // echo servers run on every host since the connectivity test
  for (const fw of firewalls) {
    l.firewall = fw;
    assert.equal((await probe(h1, [target]))[target], 'ok', `${fw}: before`);
    await h2.blockFrom(h1);
    await h2.blockFrom(h1); // idempotent
    assert.equal((await probe(h1, [target], 700))[target], 'timeout', `${fw}: h1 → h2 blocked`);
    assert.equal((await probe(h3, [target]))[target], 'ok', `${fw}: h3 → h2 still fine`);
    assert.equal(await probeRoot(h2.ip, PORT), 'ok', `${fw}: root → h2 still fine`);
    await h2.unblockFrom(h1);
    assert.equal((await probe(h1, [target]))[target], 'ok', `${fw}: unblockFrom heals`);
    await l.partition([h1], [h2, h3]);
    assert.equal((await probe(h1, [target], 700))[target], 'timeout', `${fw}: partition`);
    assert.equal((await probe(h2, [`${h3.ip}:${PORT}`]))[`${h3.ip}:${PORT}`], 'ok', `${fw}: same side`);
    await l.heal();
    await h2.unblockAll(); // idempotent
    assert.equal((await probe(h1, [target]))[target], 'ok', `${fw}: healed`);
    log(`partition checked with ${fw}`);
  }
  l.firewall = undefined;
});

test('list() reports the lab with its hosts and processes', async () => {
  const l = theLab();
  const all = await Lab.list();
  const me = all.find((x) => x.name === NAME);
  assert.ok(me, 'lab listed');
  assert.equal(me.subnet, l.subnet);
  assert.deepEqual(
    me.hosts.map((h) => [h.name, h.ip, h.up]),
    l.hosts.map((h) => [h.name, h.ip, true]),
  );
  assert.ok(me.pids.length >= 3, 'echo servers listed');
  assert.equal(me.creatorPid, process.pid);
  assert.equal(me.creatorAlive, true);
});

test('create refuses bad input and an existing lab', async () => {
  await assert.rejects(Lab.create({ name: 'Bad-Name', hosts: 1 }), LabError);
  await assert.rejects(Lab.create({ name: 'toolongname', hosts: 1 }), LabError);
  await assert.rejects(Lab.create({ name: NAME_BIG, hosts: 245 }), LabError);
  await assert.rejects(Lab.create({ name: NAME_BIG, hosts: 1, subnet: '10.0.0.0/16' }), LabError);
  await assert.rejects(Lab.create({ name: NAME, hosts: 1 }), /already exists/);
  assert.equal(labNamespaces(NAME_BIG).length, 0);
  // A stale state directory counts as a leftover (old data must not reach a new lab's daemons).
  const stale = path.join(DEFAULT_STATE_ROOT, NAME_BIG, 'h1');
  fs.mkdirSync(stale, { recursive: true });
  await assert.rejects(Lab.create({ name: NAME_BIG, hosts: 1 }), /already exists or left leftovers/);
  assert.deepEqual((await Lab.list()).find((x) => x.name === NAME_BIG)?.stateFile, false, 'listed as leftovers');
  assert.deepEqual((await Lab.downByName(NAME_BIG, { force: true })).errors, []);
  assertGone(NAME_BIG);
});

test('down(): a 5-host lab with busy, daemonized, escaping and stubborn processes leaves nothing', async () => {
  const stateRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-lab-test-'));
  const t0 = performance.now();
  const big = await Lab.create({ name: NAME_BIG, hosts: 5, graceMs: 300, stateRoot });
  const upMs = performance.now() - t0;
  const undo = cleanupOnExit(big);
  try {
    log(`bring-up of 5 hosts: ${upMs.toFixed(1)} ms`);
    const [h1, h2, h3, h4] = [big.host(1), big.host(2), big.host(3), big.host(4)];
    await startEcho(h1);
    h2.spawn('sleep', ['300'], { stdio: 'ignore' });
    h2.spawn('sh', ['-c', 'sleep 301 & sleep 302 & wait'], { stdio: 'ignore', detached: true });
    h3.spawn('sh', ['-c', 'sleep 303 & exit 0'], { stdio: 'ignore' }); // orphan, reparented to init
    h3.spawn('unshare', ['--net', 'sleep', '304'], { stdio: 'ignore' }); // leaves the lab namespace
    h3.spawn('sh', ['-c', 'unshare --net sleep 305 & exit 0'], { stdio: 'ignore' }); // orphan, own namespace
    const stubborn = h4.spawn(NODE, ['-e', "process.on('SIGTERM',()=>{});console.log('up');setInterval(()=>{},1e3)"], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await waitForLine(stubborn, 'up');
    await new Promise((r) => setTimeout(r, 100)); // let the shells fork
    const listed = (await Lab.list()).find((x) => x.name === NAME_BIG);
    assert.ok(listed);
    const pids = listed.pids;
    assert.ok(pids.length >= 9, `expected ≥ 9 lab processes, found ${pids.length}: ${pids.join(' ')}`);
    const t1 = performance.now();
    const r = await big.down();
    log(`down of 5 hosts with ${pids.length} processes: ${(performance.now() - t1).toFixed(1)} ms (grace 300 ms)`);
    assert.deepEqual(r.errors, []);
    assertGone(NAME_BIG, pids, stateRoot);
    assert.deepEqual(fs.readdirSync(stateRoot), [], 'the caller-given state root is left, empty');
    const again = await big.down(); // idempotent
    assert.deepEqual(again.errors, []);
    assert.throws(() => big.host(1).spawn('true', []), LabError);
    assert.equal(big.host(1).dir, path.join(stateRoot, NAME_BIG, 'h1'));
  } finally {
    undo();
    await big.down();
    fs.rmSync(stateRoot, { recursive: true, force: true });
  }
});

/** Runs `code` (an ES module importing lab.ts as `Lab`, `cleanupOnExit`) in a child node process. */
function labChild(code: string): ChildProcess {
  const src = `import { Lab, cleanupOnExit } from ${JSON.stringify(LAB_TS)};\n${code}`;
  return spawn(NODE, ['--import', 'tsx', '--input-type=module', '-e', src], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: path.dirname(LAB_TS),
  });
}

test('cleanupOnExit: a creator that gets SIGTERM or dies of an uncaught exception tears its lab down', async () => {
  const body = (name: string, then: string) => `
    const lab = await Lab.create({ name: ${JSON.stringify(name)}, hosts: 2, graceMs: 200 });
    cleanupOnExit(lab);
    lab.hosts[0].spawn('sleep', ['300'], { stdio: 'ignore' });
    lab.hosts[1].spawn('sh', ['-c', 'sleep 301 & exit 0'], { stdio: 'ignore' });
    setTimeout(() => console.log('ready'), 100);
    ${then}`;
  const termed = labChild(body(NAME_SIGTERM, 'setInterval(() => {}, 1000);'));
  const thrown = labChild(body(NAME_THROW, "setTimeout(() => { throw new Error('boom'); }, 1000);"));
  let thrownErr = '';
  thrown.stderr?.setEncoding('utf8').on('data', (d: string) => (thrownErr += d));
  try {
    const exitOf = (c: ChildProcess) => new Promise<[number | null, NodeJS.Signals | null]>((resolve) => c.once('exit', (code, sig) => resolve([code, sig])));
    const exits = Promise.all([exitOf(termed), exitOf(thrown)]);
    await Promise.all([waitForLine(termed, 'ready', 30_000), waitForLine(thrown, 'ready', 30_000)]);
    const pids = (await Lab.list()).filter((x) => x.name === NAME_SIGTERM || x.name === NAME_THROW).flatMap((x) => x.pids);
    assert.ok(pids.length >= 4, `lab processes: ${pids.join(' ')}`);
    termed.kill('SIGTERM');
    const [[tCode, tSig], [xCode]] = await exits;
    assert.equal(tSig, 'SIGTERM', `SIGTERMed creator exit: ${tCode}/${tSig}`);
    assert.equal(xCode, 1);
    assert.match(thrownErr, /boom/);
    assertGone(NAME_SIGTERM, pids);
    assertGone(NAME_THROW, pids);
  } finally {
    for (const c of [termed, thrown]) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
});

test('downByName(force) cleans up after a creator that was SIGKILLed', async () => {
  const code = `
    const lab = await Lab.create({ name: ${JSON.stringify(NAME_KILLED)}, hosts: 2 });
    const [h1, h2] = lab.hosts;
    h1.spawn('sleep', ['300'], { stdio: 'ignore', detached: true });
    h1.spawn('sh', ['-c', 'sleep 301 & exit 0'], { stdio: 'ignore' });
    h2.spawn('unshare', ['--net', 'sleep', '302'], { stdio: 'ignore' });
    h2.spawn(process.execPath, ['-e', "process.on('SIGTERM',()=>{});setInterval(()=>{},1e3)"], { stdio: 'ignore' });
    setTimeout(() => console.log('ready'), 100);
    setInterval(() => {}, 1000);
  `;
  const creator = labChild(code);
  creator.stderr?.pipe(process.stderr);
  try {
    await waitForLine(creator, 'ready', 30_000);
    await assert.rejects(Lab.downByName(NAME_KILLED), /in use/, 'refused without force while the creator lives');
    const before = (await Lab.list()).find((x) => x.name === NAME_KILLED);
    assert.ok(before);
    assert.equal(before.creatorPid, creator.pid);
    assert.ok(before.pids.length >= 4, `lab processes: ${before.pids.join(' ')}`);
    const exited = new Promise((resolve) => creator.once('exit', resolve));
    creator.kill('SIGKILL');
    await exited;
    const leftover = (await Lab.list()).find((x) => x.name === NAME_KILLED);
    assert.ok(leftover, 'the lab outlives its creator');
    assert.equal(leftover.creatorAlive, false);
    assert.equal(leftover.hosts.length, 2);
    assert.ok(leftover.switchUp && leftover.rootLink);
    const r = await Lab.downByName(NAME_KILLED, { force: true, graceMs: 300, log });
    assert.deepEqual(r.errors, []);
    assertGone(NAME_KILLED, before.pids);
    assert.equal(
      (await Lab.list()).some((x) => x.name === NAME_KILLED),
      false,
    );
  } finally {
    if (creator.exitCode === null && creator.signalCode === null) creator.kill('SIGKILL');
  }
});

test('down() of the shared lab leaves nothing and is idempotent', async () => {
  const l = theLab();
  const pids = (await Lab.list()).find((x) => x.name === NAME)?.pids ?? [];
  assert.ok(pids.length >= 3);
  const r = await l.down();
  assert.deepEqual(r.errors, []);
  assertGone(NAME, pids);
  assert.deepEqual((await l.down()).errors, []);
});
