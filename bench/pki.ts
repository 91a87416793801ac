// `npm run bench:pki`: what the cluster PKI costs per node, in this process, for the two key profiles
// measured in the same run: "rsa" (root RSA-3072, node keys RSA-2048: the old default, the baseline)
// and "ecdsa" (root and node keys ECDSA P-256: the default since manager/ca/pki.ts took ECDSA). Why:
// every join and renewal costs the leader one signNodeCertificate, and every session (a join, a
// reconnect storm after a change of leader) one mutual-TLS handshake on each end; bench:scale's joins
// and failover storms were bound by those RSA signatures, which ECDSA cuts. Printed one per line, as
// median and p99, for each profile (the profiles alternate iteration by iteration, so both see the
// same machine load):
//   1. node key generation (generateKeyPem, wall time of the async call, one at a time);
//   2. createCsr;
//   3. signNodeCertificate, the CA's work per join (CSR check + certificate signature): CPU and wall;
//   4. verifyNodeCertificate, the check a manager runs on each session's peer certificate;
//   5. a full mutual-TLS 1.3 handshake over loopback (both ends in this process, no session
//      resumption): CPU of both ends together and wall time, with the negotiated parameters;
// then the ratios rsa ÷ ecdsa and what 5,000 joins and 5,000 handshakes cost a leader. CPU is the
// process's (process.cpuUsage: every thread, V8's GC helpers included), so a p99 of CPU may exceed the
// p99 of wall time.
// BENCH_PKI_ITERATIONS (default 200) sets the iterations of the cheap operations; RSA key generation
// runs BENCH_PKI_RSA_KEYGEN (default 30) times.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { connect, createSecureContext, createServer, type SecureContext, type TLSSocket } from 'node:tls';
import { createRootCa, signNodeCertificate } from '../manager/ca/issue.ts';
import { createCsr, generateKeyPem, verifyNodeCertificate, type KeyType } from '../manager/ca/pki.ts';
import { summarize } from './stats.ts';

const ITERATIONS = Number(process.env.BENCH_PKI_ITERATIONS ?? 200);
const RSA_KEYGEN = Number(process.env.BENCH_PKI_RSA_KEYGEN ?? 30);
const WARMUP = 20;
const CLUSTER_ID = 'bench-pki';
const JOINS = 5_000;

interface Profile {
  name: 'rsa' | 'ecdsa';
  rootKey: KeyType;
  nodeKey: KeyType;
  /** Key generations to measure (RSA's take tens of milliseconds each). */
  keygens: number;
}

const PROFILES: readonly Profile[] = [
  { name: 'rsa', rootKey: 'rsa-3072', nodeKey: 'rsa-2048', keygens: RSA_KEYGEN },
  { name: 'ecdsa', rootKey: 'ecdsa-p256', nodeKey: 'ecdsa-p256', keygens: ITERATIONS },
];

interface Samples {
  wall: number[];
  cpu: number[];
}

/** A profile's CA and two node identities (the TLS server's and the client's). */
interface Material {
  caCertPem: string;
  caKeyPem: string;
  nodes: { keyPem: string; certPem: string; csrPem: string }[];
}

const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;
const fmt = (v: number, digits = 2) => v.toFixed(digits);

/** One timed call: wall and process CPU (all threads: the libuv pool's work counts too), in ms. */
async function timed(fn: () => unknown): Promise<{ wall: number; cpu: number }> {
  const u0 = process.cpuUsage();
  const t0 = performance.now();
  const r = fn();
  if (r instanceof Promise) await r;
  const wall = performance.now() - t0;
  return { wall, cpu: cpuMs(process.cpuUsage(u0)) };
}

/**
 * Runs `fn` for each profile, alternating profile by profile, `warmup` times unmeasured and then as many
 * times as `count` says, and returns the samples by profile name.
 */
async function measure(count: (p: Profile) => number, warmup: number, fn: (p: Profile, i: number) => unknown): Promise<Map<string, Samples>> {
  const out = new Map<string, Samples>(PROFILES.map((p) => [p.name, { wall: [], cpu: [] }]));
  for (let i = 0; i < warmup; i++) for (const p of PROFILES) await fn(p, i);
  const most = Math.max(...PROFILES.map(count));
  for (let i = 0; i < most; i++) {
    for (const p of PROFILES) {
      if (i >= count(p)) continue;
      const r = await timed(() => fn(p, i));
      out.get(p.name)!.wall.push(r.wall);
      out.get(p.name)!.cpu.push(r.cpu);
    }
  }
  return out;
}

async function material(p: Profile): Promise<Material> {
  const ca = await createRootCa({ clusterId: CLUSTER_ID, keyType: p.rootKey });
  const nodes = [];
  for (const nodeId of ['server-node', 'client-node']) {
    const keyPem = await generateKeyPem(p.nodeKey);
    const csrPem = createCsr({ keyPem, nodeId });
    const { certPem } = signNodeCertificate({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, csrPem, nodeId, role: 'worker', clusterId: CLUSTER_ID });
    nodes.push({ keyPem, certPem, csrPem });
  }
  return { caCertPem: ca.certPem, caKeyPem: ca.keyPem, nodes };
}

/** What a handshake negotiated, read once per profile. */
interface Negotiated {
  protocol: string;
  cipher: string;
  group: string;
  serverSigalg: string;
  clientSigalg: string;
}

/** A mutual-TLS server on loopback with the profile's server node certificate, and a full-handshake client. */
class Handshaker {
  private pending: ((s: TLSSocket) => void) | null = null;
  readonly server;
  /** Built once, as a node holds its own: the per-connection cost measured is the handshake's alone. */
  private readonly clientContext: SecureContext;
  reused = 0;
  negotiated: Negotiated | null = null;

  constructor(m: Material) {
    const node = m.nodes[0]!;
    this.server = createServer({ key: node.keyPem, cert: node.certPem, ca: [m.caCertPem], requestCert: true, rejectUnauthorized: true }, (s) => {
      const cb = this.pending;
      this.pending = null;
      cb?.(s);
    });
    const client = m.nodes[1]!;
    this.clientContext = createSecureContext({ key: client.keyPem, cert: client.certPem, ca: [m.caCertPem] });
    this.server.on('tlsClientError', (err) => console.error(`bench:pki: server handshake failed: ${err.message}`));
  }

  async listen(): Promise<void> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
  }

  /** One full handshake: resolves once both ends have finished it, then closes both sockets (not timed). */
  async handshake(measured: Samples | null): Promise<void> {
    const { port } = this.server.address() as AddressInfo;
    const serverSide = new Promise<TLSSocket>((resolve) => (this.pending = resolve));
    const u0 = process.cpuUsage();
    const t0 = performance.now();
    // No `session` option: the client has nothing to resume, so every handshake is a full one.
    const client = connect({
      host: '127.0.0.1',
      port,
      secureContext: this.clientContext,
      checkServerIdentity: () => undefined,
    });
    const clientDone = new Promise<void>((resolve, reject) => {
      client.once('secureConnect', resolve);
      client.once('error', reject);
    });
    const [, s] = await Promise.all([clientDone, serverSide]);
    const wall = performance.now() - t0;
    const cpu = cpuMs(process.cpuUsage(u0));
    if (!client.authorized || !s.authorized) throw new Error(`handshake not authorized: ${client.authorizationError ?? s.authorizationError}`);
    if (client.isSessionReused()) this.reused++;
    if (measured) {
      measured.wall.push(wall);
      measured.cpu.push(cpu);
    }
    if (this.negotiated === null) this.negotiated = negotiated(client, s);
    const closed = Promise.all([once(client, 'close'), once(s, 'close')]);
    client.destroy();
    s.destroy();
    await closed;
  }

  async close(): Promise<void> {
    this.server.close();
    await once(this.server, 'close');
  }
}

/**
 * Node does not say which signature algorithm a handshake used; OpenSSL takes the first shared one that
 * fits the signer's key, so that is what is printed (getSharedSigalgs names them as "ECDSA+SHA256").
 */
function negotiated(client: TLSSocket, server: TLSSocket): Negotiated {
  const fits = (sigalgs: string[], cert: { publicKey: { asymmetricKeyType?: string } } | undefined) => {
    const kind = cert?.publicKey.asymmetricKeyType;
    // TLS 1.3 signs with RSA-PSS only (never PKCS#1 v1.5); P-256 with SHA-256 only.
    const first = sigalgs.find((a) => (kind === 'ec' ? a.startsWith('ECDSA+') : a.startsWith('RSA-PSS+')));
    return first ?? '?';
  };
  const info = client.getEphemeralKeyInfo();
  const group = info && 'name' in info && info.name ? String(info.name) : '?';
  return {
    protocol: client.getProtocol() ?? '?',
    cipher: client.getCipher().standardName,
    group,
    serverSigalg: fits(server.getSharedSigalgs(), server.getX509Certificate()),
    clientSigalg: fits(client.getSharedSigalgs(), client.getX509Certificate()),
  };
}

function line(what: string, p: Profile, values: number[], unit: string, kind: string, digits = 2): string {
  const s = summarize(values);
  return `${what}, ${p.name}: ${fmt(s.p50, digits)} ${unit}${kind} p50, ${fmt(s.p99, digits)} ${unit} p99`;
}

async function main(): Promise<void> {
  const started = performance.now();
  console.log(
    `bench:pki — profiles rsa (root RSA-3072, nodes RSA-2048; baseline) and ecdsa (root and nodes ECDSA P-256), alternating; ${ITERATIONS} iterations (RSA key generation ${RSA_KEYGEN}) after warm-up`,
  );
  const m = new Map<string, Material>();
  for (const p of PROFILES) m.set(p.name, await material(p));
  const get = (p: Profile) => m.get(p.name)!;

  // 1. Node key generation.
  const keygen = await measure(
    (p) => p.keygens,
    3,
    (p) => generateKeyPem(p.nodeKey),
  );
  for (const p of PROFILES) {
    const s = keygen.get(p.name)!;
    console.log(`${line('node key generation', p, s.wall, 'ms', ' wall')} (${p.nodeKey}, CPU p50 ${fmt(summarize(s.cpu).p50)} ms, n=${s.wall.length})`);
  }

  // 2. createCsr.
  const csr = await measure(
    () => ITERATIONS,
    WARMUP,
    (p, i) => createCsr({ keyPem: get(p).nodes[1]!.keyPem, nodeId: `node-${i}` }),
  );
  for (const p of PROFILES) console.log(`${line('createCsr', p, csr.get(p.name)!.wall, 'ms', ' wall')} (n=${csr.get(p.name)!.wall.length})`);

  // 3. signNodeCertificate: the CA's work for every join and renewal.
  const signed = await measure(
    () => ITERATIONS,
    WARMUP,
    (p, i) =>
      signNodeCertificate({
        caCertPem: get(p).caCertPem,
        caKeyPem: get(p).caKeyPem,
        csrPem: get(p).nodes[1]!.csrPem,
        nodeId: `node-${i}`,
        role: 'worker',
        clusterId: CLUSTER_ID,
      }),
  );
  for (const p of PROFILES) {
    const s = signed.get(p.name)!;
    const w = summarize(s.wall);
    console.log(`${line('sign per join', p, s.cpu, 'ms', ' CPU')}; ${fmt(w.p50)} ms wall p50, ${fmt(w.p99)} ms p99 (root ${p.rootKey}, n=${s.cpu.length})`);
  }

  // 4. verifyNodeCertificate, on the PEM a session's peer presents.
  const verified = await measure(
    () => ITERATIONS,
    WARMUP,
    (p) => {
      const r = verifyNodeCertificate(get(p).nodes[1]!.certPem, { caCertPem: get(p).caCertPem, clusterId: CLUSTER_ID });
      if (!r.ok) throw new Error(`verifyNodeCertificate: ${r.reason}`);
    },
  );
  for (const p of PROFILES) {
    const us = verified.get(p.name)!.wall.map((ms) => ms * 1000);
    console.log(`${line('verifyNodeCertificate', p, us, 'µs', ' wall', 0)} (n=${us.length})`);
  }

  // 5. Full mutual-TLS handshakes over loopback.
  const shakers = new Map<string, Handshaker>();
  for (const p of PROFILES) {
    const h = new Handshaker(get(p));
    await h.listen();
    shakers.set(p.name, h);
  }
  const tlsSamples = new Map<string, Samples>(PROFILES.map((p) => [p.name, { wall: [], cpu: [] }]));
  try {
    for (let i = 0; i < WARMUP; i++) for (const p of PROFILES) await shakers.get(p.name)!.handshake(null);
    for (const h of shakers.values()) h.reused = 0;
    for (let i = 0; i < ITERATIONS; i++) for (const p of PROFILES) await shakers.get(p.name)!.handshake(tlsSamples.get(p.name)!);
  } finally {
    for (const h of shakers.values()) await h.close();
  }
  for (const p of PROFILES) {
    const s = tlsSamples.get(p.name)!;
    const h = shakers.get(p.name)!;
    const w = summarize(s.wall);
    const reused = h.reused > 0 ? `, ${h.reused} RESUMED (not full)` : ', none resumed';
    console.log(`${line('mTLS handshake', p, s.cpu, 'ms', ' CPU (both ends)')}; ${fmt(w.p50)} ms wall p50, ${fmt(w.p99)} ms p99 (n=${s.cpu.length}${reused})`);
    const n = h.negotiated;
    if (n) {
      console.log(
        `mTLS negotiated, ${p.name}: ${n.protocol} ${n.cipher}, key exchange ${n.group}, server signs ${n.serverSigalg}, client signs ${n.clientSigalg} (sigalgs: first shared fitting the key)`,
      );
    }
  }

  // Ratios and projections.
  const p50 = (map: Map<string, Samples>, name: string, what: 'wall' | 'cpu') => summarize(map.get(name)![what]).p50;
  const ratio = (map: Map<string, Samples>, what: 'wall' | 'cpu') => `${fmt(p50(map, 'rsa', what) / p50(map, 'ecdsa', what), 1)}×`;
  console.log(`rsa ÷ ecdsa, sign per join CPU p50: ${ratio(signed, 'cpu')}`);
  console.log(`rsa ÷ ecdsa, mTLS handshake CPU p50: ${ratio(tlsSamples, 'cpu')}`);
  console.log(`rsa ÷ ecdsa, node key generation wall p50: ${ratio(keygen, 'wall')}`);
  const project = (map: Map<string, Samples>, name: string) => fmt((p50(map, name, 'cpu') * JOINS) / 1000);
  console.log(
    `leader CPU for 5,000 joins (signature only): ${project(signed, 'rsa')} s rsa, ${project(signed, 'ecdsa')} s ecdsa (signNodeCertificate CPU p50 × 5,000)`,
  );
  console.log(
    `leader CPU for 5,000 TLS handshakes (both ends in one process, so an upper bound for the server side): ${project(tlsSamples, 'rsa')} s rsa, ${project(tlsSamples, 'ecdsa')} s ecdsa (handshake CPU p50 × 5,000)`,
  );
  console.log(`bench:pki took ${fmt((performance.now() - started) / 1000, 1)} s`);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`bench:pki: ${(e as Error).stack ?? e}`);
    process.exit(1);
  },
);
