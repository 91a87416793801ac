// Many simulated worker nodes in one process: each joins the cluster for real (token, CSR, signed
// certificate) and runs a real Agent session to the leader with a FakeExecutor, so the real managers
// (orchestrators, scheduler, dispatcher, Raft) are driven at scale without containers.
// Used by `npm run bench:converge` and the orchestration tests; run as a script it prints "ready N".
import { createCsr, generateKeyPem } from '../manager/ca/pki.ts';
import { httpsJson } from '../transport/https.ts';
import { Agent } from '../worker/agent.ts';
import { FakeExecutor } from '../worker/fake-executor.ts';

export interface FarmOptions {
  managers: string[]; // host:port
  token: string;
  caPem: string;
  count: number;
  namePrefix?: string;
  /** Address the simulated nodes claim (they listen nowhere). */
  addr?: string;
  log?: (l: string) => void;
}

export class AgentFarm {
  readonly agents: Agent[] = [];

  static async start(o: FarmOptions): Promise<AgentFarm> {
    const farm = new AgentFarm();
    // One key for all simulated nodes: certificates still differ (CN = node id); key generation would
    // otherwise dominate the set-up time.
    const key = await generateKeyPem();
    const prefix = o.namePrefix ?? 'sim';
    const join = async (i: number) => {
      let remote = o.managers[0]!;
      // Redirects to the leader and rate-limit answers (429) are retried; anything else is an error.
      for (let attempt = 0; attempt < 100; attempt++) {
        const r = await httpsJson(
          remote,
          'POST',
          '/v1/join',
          { token: o.token, csr: createCsr({ keyPem: key, nodeId: 'joining' }), advertise: `${o.addr ?? '127.0.0.1'}:2377`, hostname: `${prefix}${i}` },
          { ca: o.caPem },
        );
        if (r.status === 421 && r.body?.error?.leader) {
          remote = r.body.error.leader;
          continue;
        }
        if (r.status === 429) {
          await new Promise((res) => setTimeout(res, 200));
          continue;
        }
        if (r.status !== 200) throw new Error(`join ${prefix}${i}: HTTP ${r.status} ${r.body?.error?.message ?? ''}`);
        const creds = { key, cert: r.body.certPem as string, ca: r.body.caCertPem as string };
        const agent = new Agent({
          nodeId: r.body.nodeId,
          managers: (r.body.managers as { addr: string }[]).map((m) => m.addr),
          creds: () => creds,
          advertiseAddr: o.addr ?? '127.0.0.1',
          hostname: `${prefix}${i}`,
          executor: new FakeExecutor(),
        });
        agent.start();
        farm.agents.push(agent);
        return;
      }
      throw new Error(`join ${prefix}${i}: gave up after 100 attempts (redirects or rate limiting)`);
    };
    // A few joins at a time (the join endpoint is rate limited per address).
    const queue = Array.from({ length: o.count }, (_, i) => i + 1);
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = queue.shift(); i !== undefined; i = queue.shift()) await join(i);
      }),
    );
    return farm;
  }

  stop(): void {
    for (const a of this.agents) a.stop();
  }
}

// As a script: node --import tsx lab/agent-farm.ts <config-json>
if (/agent-farm\.[jt]s$/.test(process.argv[1] ?? '') && process.argv[2]) {
  const cfg = JSON.parse(process.argv[2]) as FarmOptions;
  AgentFarm.start(cfg).then(
    (f) => {
      console.log(`ready ${f.agents.length}`);
      process.on('SIGTERM', () => {
        f.stop();
        process.exit(0);
      });
    },
    (e) => {
      console.error(`agent farm: ${(e as Error).message}`);
      process.exit(1);
    },
  );
}
