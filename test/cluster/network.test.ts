// Overlay networking end to end, through the CLI, on lab hosts running real containers: an overlay
// network, service discovery by name across hosts, `tasks.<svc>`, isolation between networks, the
// routing mesh answering on every host (also those without a task) and spreading requests, records
// following scale-down, and nothing left behind after the lab goes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { localCall } from '../../client/context.ts';
import { buildImage, busyboxLayer, demoWebImage } from '../../worker/images/build.ts';
import { ClusterLab, httpGet, httpProbe, waitFor } from '../../lab/cluster-lab.ts';
import { cleanupOnExit } from '../../lab/lab.ts';

const NAME = `n${process.pid % 10000}`;
const SHOAL = join(resolve(fileURLToPath(new URL('../..', import.meta.url))), 'bin', 'shoal');

const get = httpGet;

// The suite's budget is generous on purpose: at load 20+ on the 2-core machine one test alone took 78 s, the
// suite hit a 240 s limit mid-test and its after() hook took the lab down under the tests still running.
describe('overlay networks, discovery and the routing mesh on lab hosts', { concurrency: false, timeout: 600_000 }, () => {
  let c: ClusterLab;
  let unhook: () => void = () => {};
  const tmp = mkdtempSync(join(tmpdir(), 'shoal-net-'));

  const sh = (...args: string[]) =>
    new Promise<{ code: number; out: string; err: string }>((res) => {
      execFile(SHOAL, args, { env: { ...process.env, SHOAL_CONTEXT: c.contextPath }, timeout: 90_000 }, (e, out, err) =>
        res({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out: String(out), err: String(err) }),
      );
    });
  const tasksOf = async (svc: string) => ((await c.control('GET', `/v1/tasks?service=${svc}`)) as any[]).filter((t) => t.status.state === 'running');
  /** An HTTP GET from inside a task with busybox nc (the static busybox's wget needs glibc NSS). */
  const httpFrom = (svc: string, target: string) => execIn(svc, 'sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${target} 80`);
  /**
   * Where a task's DNS queries go, seen from the task and from its node (for a failure message), most
   * telling first and one line per fact, because CI keeps only the start of a failure's text: whether the
   * task still has its gateway leg, address and route; whether one fresh query reached the node's UDP
   * layer (the node's UDP counters around it); the gateway bridge's and the legs' MACs, the node's ARP entries for it and the
   * bridge guard's sets; the resolver's socket; the daemon log's network lines.
   */
  const resolverReport = async (svc: string): Promise<string> => {
    const out: string[] = [];
    const line = (s: string) => s.replace(/\s+/g, ' ').trim().slice(0, 600);
    try {
      const t = (await tasksOf(svc))[0];
      const hostname = (await c.nodes()).find((n: { id: string }) => n.id === t?.nodeId)?.description.hostname;
      const host = c.lab.hosts.find((h) => h.name === hostname);
      out.push(`${svc} task ${t?.id ?? '?'} on ${host?.name ?? '?'}`);
      const inTask = async (label: string, cmd: string) => out.push(`task ${label}: ${line((await execIn(svc, 'sh', '-c', `(${cmd}) 2>&1`)).out)}`);
      await inTask('addresses', 'ip -o -4 addr || ifconfig -a');
      await inTask('routes, arp', 'ip route; cat /proc/net/arp');
      const onHost = async (cmd: string, args: string[]) =>
        host ? line((await host.exec(cmd, args).catch((x: Error) => ({ stdout: x.message }))).stdout) : '(no host)';
      const udp = () => onHost('sh', ['-c', "grep '^Udp:' /proc/net/snmp | tail -1"]);
      const before = await udp();
      const probe = await execIn(svc, 'nslookup', 'tasks.web');
      out.push(`one more query: exit ${probe.code}: ${line(probe.out + probe.err).slice(0, 200)}`);
      out.push(`node Udp: (InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors ...) before: ${before} after: ${await udp()}`);
      out.push(`node gateway bridge and legs (name, state, MAC): ${await onHost('sh', ['-c', 'ip -br link | grep -- -g'])}`);
      out.push(`node neighbours: ${await onHost('ip', ['neigh', 'show'])}`);
      out.push(`node guard: ${await onHost('sh', ['-c', 'nft list set bridge shoal-guard legs; nft list set bridge shoal-guard ports'])}`);
      out.push(`node resolver socket: ${await onHost('ss', ['-uanp', 'sport', '= :53'])}`);
      if (host) {
        const log = readFileSync(join(host.dir, 'daemon.log'), 'utf8').split('\n');
        out.push(
          `daemon log, network lines (last 15):\n${log
            .filter((l) => /network|dns|dataplane|guard|detach|attach/i.test(l))
            .slice(-15)
            .join('\n')}`,
        );
      }
    } catch (x) {
      out.push(`(report failed: ${(x as Error).message})`);
    }
    return out.join('\n');
  };

  const execIn = async (svc: string, ...cmd: string[]) => {
    const t = (await tasksOf(svc))[0];
    assert.ok(t, `a running task of ${svc}`);
    return sh('task', 'exec', t.id, '--', ...cmd);
  };

  before(async () => {
    unhook = cleanupOnExit(NAME);
    c = await ClusterLab.up({ name: NAME, managers: 1, workers: 2, executor: 'engine' });
    writeFileSync(join(tmp, 'web.tar'), demoWebImage('shoal/demo-web:1').archive);
    writeFileSync(join(tmp, 'box.tar'), buildImage({ name: 'shoal/box:1', layers: [busyboxLayer()], cmd: ['sleep', '100000'] }).archive);
    await localCall(c.stateDir('h1'), 'POST', '/images/load', { path: join(tmp, 'web.tar') });
    await localCall(c.stateDir('h1'), 'POST', '/images/load', { path: join(tmp, 'box.tar') });
  });

  after(async () => {
    await c?.down();
    unhook();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('creates overlay networks and refuses bad ones without changing anything', async () => {
    assert.equal((await sh('network', 'create', '--driver', 'overlay', 'front')).code, 0);
    assert.equal((await sh('network', 'create', '--driver', 'overlay', '--subnet', '10.20.0.0/24', 'back')).code, 0);
    const bad = await sh('network', 'create', '--driver', 'overlay', '--subnet', '10.20.0.128/25', 'clash');
    assert.notEqual(bad.code, 0);
    assert.match(bad.err, /overlap/);
    const ls = await sh('network', 'ls');
    assert.match(ls.out, /front/);
    assert.match(ls.out, /back/);
    assert.match(ls.out, /ingress/);
    assert.doesNotMatch(ls.out, /clash/);
  });

  it('tasks on different hosts reach each other by service name; tasks.<svc> lists exactly the running tasks', async () => {
    let r = await sh('service', 'create', '--name', 'web', '--replicas', '3', '--network', 'front', '-p', '8080:80', 'shoal/demo-web:1');
    assert.equal(r.code, 0, r.err + r.out);
    r = await sh('service', 'create', '--name', 'client', '--network', 'front', 'shoal/box:1');
    assert.equal(r.code, 0, r.err + r.out);
    const web = await tasksOf('web');
    assert.equal(web.length, 3);
    assert.equal(new Set(web.map((t) => t.nodeId)).size, 3, 'spread over the three hosts');
    // by VIP name
    await waitFor(async () => /Hello from/.test((await httpFrom('client', 'web')).out), 20_000, 'client reaches web by name');
    // tasks.web: the three task addresses on `front`
    const frontId = ((await c.control('GET', '/v1/networks')) as any[]).find((n) => n.spec.name === 'front').id;
    const frontIps = web.map((t) => t.networks.find((n: any) => n.networkId === frontId).addresses[0].split('/')[0]).sort();
    await waitFor(
      async () => {
        const out = (await execIn('client', 'nslookup', 'tasks.web')).out;
        const got = [...out.matchAll(/Address:\s*(\d+\.\d+\.\d+\.\d+)$/gm)]
          .map((m) => m[1])
          .filter((a) => a !== '172.31.0.1')
          .sort();
        return JSON.stringify(got) === JSON.stringify(frontIps);
      },
      10_000,
      `tasks.web = ${frontIps.join(',')}`,
    );
    // and by task IP directly across hosts
    for (const ip of frontIps) assert.match((await httpFrom('client', ip)).out, /Hello from/);
  });

  it('the routing mesh answers on every host and spreads requests over the tasks', async () => {
    const hosts = c.lab.hosts.map((h) => h.ip!);
    for (const ip of hosts) await waitFor(async () => (await get(ip, 8080)) !== null, 15_000, `mesh on ${ip}:8080`);
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const body = await get(hosts[i % hosts.length]!, 8080);
      assert.ok(body, `request ${i} answered`);
      seen.add(body!.trim());
    }
    assert.ok(seen.size >= 2, `requests spread over several tasks (saw ${[...seen].join(' | ')})`);
  });

  it('a network is isolated from another one', async () => {
    const r = await sh('service', 'create', '--name', 'other', '--network', 'back', 'shoal/box:1');
    assert.equal(r.code, 0, r.err + r.out);
    const frontId = ((await c.control('GET', '/v1/networks')) as any[]).find((n) => n.spec.name === 'front').id;
    const ip = (await tasksOf('web'))[0].networks.find((n: any) => n.networkId === frontId).addresses[0].split('/')[0];
    const probe = await httpFrom('other', ip);
    assert.doesNotMatch(probe.out, /Hello from/, 'back cannot reach front');
    const dns = await execIn('other', 'nslookup', 'web');
    assert.doesNotMatch(dns.out, /Address:\s*10\./, 'web does not resolve on back');
  });

  it('traffic stops going to a task within about a second of its container dying', async () => {
    const web = await tasksOf('web');
    const victim = web[0];
    const host = (await c.nodes()).find((n: any) => n.id === victim.nodeId).description.hostname as string;
    const st = JSON.parse(readFileSync(join(c.stateDir(host), 'tasks', victim.id, 'state.json'), 'utf8')) as { pid: number };
    const t0 = Date.now();
    process.kill(st.pid, 'SIGKILL'); // the container's PID 1: the task fails, its replacement starts
    const entry = c.lab.hosts[0]!.ip!;
    let clean = 0;
    let gone = 0;
    while (Date.now() - t0 < 15_000 && clean < 30) {
      const body = await get(entry, 8080, 500);
      if (body !== null && !body.includes(victim.id.slice(0, 12))) {
        if (clean++ === 0) gone = Date.now() - t0;
      } else clean = 0;
    }
    assert.equal(clean, 30, 'requests stop reaching the dead task');
    console.log(`# dead task out of the routing mesh after ${gone} ms`);
    assert.ok(gone < 3000, `dead task still receiving traffic after ${gone} ms`);
    // a correctness wait, not a timing figure: a container start took more than 15 s at load 36
    await waitFor(async () => (await tasksOf('web')).length === 3, 60_000, 'replacement running');
  });

  it('a scale-down drops no request through the routing mesh, and DNS follows it within seconds', async () => {
    // Requests go to every host in turn while 2 of 3 tasks stop. Each stop is held until every node has
    // taken the task out of its tables (manager/dispatcher/drain.ts); before that, every scale-down
    // dropped the requests of a ~100 ms window on every host (connection refused by a stopped task).
    const hosts = c.lab.hosts.map((h) => h.ip!);
    let stop = false;
    let ok = 0;
    const failed: string[] = [];
    const lost: { ip: string; port: number }[] = [];
    const t0 = Date.now();
    let scaledAt = 0;
    const load = (async () => {
      for (let i = 0; !stop; i++) {
        const ip = hosts[i % hosts.length]!;
        const sent = Date.now() - t0;
        const r = await httpProbe(ip, 8080, 5000);
        if (r.status === 200 && /Hello from/.test(r.body)) ok++;
        // how and when it failed (relative to `service scale` starting and returning) says which race lost it
        else {
          const why = r.status === null ? r.why : `status ${r.status}, ${r.body.length} bytes`;
          failed.push(`${ip}: ${why} after ${Date.now() - t0 - sent} ms, sent at +${sent} ms (scale returned at +${scaledAt || '?'} ms)`);
          if (r.status === null && r.sourcePort) lost.push({ ip, port: r.sourcePort });
        }
      }
    })();
    const scaled = await sh('service', 'scale', 'web=1');
    scaledAt = Date.now() - t0;
    // The load goes on for a fixed half second after the scale-down finished (a measurement window, not
    // a wait for a condition): a request still routed to a stopped task would fail in it.
    await new Promise((r) => setTimeout(r, 500));
    stop = true;
    await load;
    assert.equal(scaled.code, 0, scaled.err);
    console.log(`# scale-down under load: ${ok} requests answered, ${failed.length} failed`);
    assert.ok(ok > 0, 'requests were answered during the scale-down');
    if (failed.length > 0) {
      // The entry node's conntrack entries of each lost connection (node namespace, then its network
      // namespaces: the ingress one DNATs to the backend), to tell which backend it was sent to and in what state.
      for (const l of lost) {
        const h = c.lab.hosts.find((x) => x.ip === l.ip);
        const cmd = `grep -h 'sport=${l.port} ' /proc/net/nf_conntrack; for n in $(ip netns list | cut -d' ' -f1 | grep -- '^${h?.ns}-n-'); do ip netns exec $n grep -h 'sport=${l.port} ' /proc/net/nf_conntrack | sed "s/^/$n: /"; done`;
        const ct = h ? (await h.exec('sh', ['-c', cmd]).catch((x: Error) => ({ stdout: x.message }))).stdout : '(no host)';
        failed.push(`conntrack on ${h?.name} for source port ${l.port}: ${ct.replace(/\s+/g, ' ').trim() || '(none)'}`);
      }
      const views = await c.control('GET', '/v1/tasks?service=web').catch(() => []);
      failed.push(
        `web tasks: ${(views as any[]).map((t) => `${t.id.slice(0, 8)} on ${t.nodeId?.slice(0, 8)} ${t.status.state}/${t.desiredState} ${t.networks?.map((n: any) => n.addresses?.[0]).join(',')}`).join('; ')}`,
      );
    }
    assert.deepEqual(failed, [], 'requests failed during the scale-down');
    // Real agents acknowledge their views: the held stops were released by the nodes, not the deadline.
    const drain = ((await c.control('GET', '/v1/dispatcher/stats')) as { drain: { released: Record<string, number>; heldMs: number } }).drain;
    const released = drain.released.acknowledged! + drain.released['node-gone']! + drain.released.deadline!;
    console.log(
      `# stop drain: ${released} stops held, mean ${(drain.heldMs / Math.max(1, released)).toFixed(0)} ms; released by the deadline: ${drain.released.deadline}`,
    );
    // (At least one: on a machine at load 30+, a node's apply can outlast the 2 s bound, and then the
    // deadline releases that stop, which is the designed behaviour. Without acknowledgements it is 0.)
    assert.ok(drain.released.acknowledged! >= 1, `stops were released by the nodes' acknowledgements: ${JSON.stringify(drain)}`);
    let lastAnswer = '';
    const oneAddress = waitFor(
      async () => {
        const r = await execIn('client', 'nslookup', 'tasks.web');
        lastAnswer = `exit ${r.code}: ${r.out}${r.err}`;
        return [...r.out.matchAll(/Address:\s*(10\.\d+\.\d+\.\d+)$/gm)].length === 1;
      },
      // A correctness bound, not a latency figure: in CI several labs share 2 cores, and the view passes
      // the leader's debounce, the session, the agent and the resolver (bench:e2e measures the latency).
      20_000,
      'tasks.web has one address',
    );
    // What nslookup last printed says whether the answer was stale or the exec failed. When the resolver
    // did not answer at all (an intermittent failure seen in CI, not reproduced on its own), what the
    // client's node shows says where the queries went: the resolver's sockets, the gateway bridge, the
    // client's own interfaces and the end of the node's daemon log.
    await oneAddress.catch(async (e: Error) => {
      throw new Error(`${e.message}; last answer: ${lastAnswer.replace(/\s+/g, ' ').slice(0, 400)}\n${await resolverReport('client')}`);
    });
    // the mesh still answers on every host, also those without a task now
    for (const h of c.lab.hosts) assert.match((await get(h.ip!, 8080)) ?? '', /Hello from/, `mesh on ${h.name}`);
  });

  it('heals by itself: a flushed nft ruleset and a deleted VXLAN device on a host come back', async () => {
    // a host that runs a task on `front` (so it has that network's namespace)
    const client = (await tasksOf('client'))[0];
    const hostname = (await c.nodes()).find((n: any) => n.id === client.nodeId).description.hostname;
    const h2 = c.lab.hosts.find((h) => h.name === hostname)!;
    const frontId = ((await c.control('GET', '/v1/networks')) as any[]).find((n) => n.spec.name === 'front').id;
    const run = (ns: string, cmd: string) => new Promise<void>((res) => execFile('nsenter', [`--net=/run/netns/${ns}`, 'sh', '-c', cmd], () => res()));
    await run(h2.ns, 'nft flush ruleset');
    await run(`${h2.ns}-n-${frontId.slice(0, 8)}`, 'ip link del vxlan0');
    // The node re-asserts everything every 5 s after a change, backing off to 20 s while nothing is found.
    await waitFor(async () => /Hello from/.test((await get(h2.ip!, 8080)) ?? ''), 45_000, `mesh on ${h2.name} after nft flush`);
    await waitFor(
      () =>
        new Promise<boolean>((res) =>
          execFile('nsenter', [`--net=/run/netns/${h2.ns}-n-${frontId.slice(0, 8)}`, 'ip', '-o', 'link', 'show', 'vxlan0'], (e) => res(!e)),
        ),
      45_000,
      `vxlan0 recreated on ${h2.name}`,
    );
  });

  it('host-mode publishing answers only where a task runs and keeps the client address', async () => {
    const r = await sh('service', 'create', '--name', 'direct', '-p', 'mode=host,published=9090,target=80', 'shoal/demo-web:1');
    assert.equal(r.code, 0, r.err + r.out);
    const t = (await tasksOf('direct'))[0];
    const node = (await c.nodes()).find((n: any) => n.id === t.nodeId);
    const host = c.lab.hosts.find((h) => h.name === node.description.hostname)!;
    await waitFor(async () => /Hello from/.test((await get(host.ip!, 9090)) ?? ''), 10_000, `host port on ${host.name}`);
    const other = c.lab.hosts.find((h) => h.name !== host.name)!;
    assert.equal(await get(other.ip!, 9090, 1000), null, 'no answer where no task runs');
    // busybox httpd -v logs the peer address: the lab gateway (the client), not a NAT address
    await waitFor(async () => (await sh('service', 'logs', '--raw', 'direct')).err.includes(`${c.lab.gateway}]`), 10_000, 'client address in the access log');
    assert.equal((await sh('service', 'rm', 'direct')).code, 0);
  });

  it('removing services frees the network; network rm refuses while in use', async () => {
    const busy = await sh('network', 'rm', 'front');
    assert.notEqual(busy.code, 0);
    assert.match(busy.err, /in use/);
    for (const s of ['web', 'client', 'other']) assert.equal((await sh('service', 'rm', s)).code, 0);
    await waitFor(async () => (await sh('network', 'rm', 'back')).code === 0, 20_000, 'back removable');
  });

  it('lab down leaves no namespaces behind', async () => {
    await c.down();
    const left = readdirSync('/run/netns').filter((n) => n.startsWith(`sl-${NAME}-`));
    assert.deepEqual(left, []);
  });
});
