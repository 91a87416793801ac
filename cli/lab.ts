// `shoal lab up|down|ls`: a multi-host cluster on one machine, each host a network namespace running a
// real Shoal daemon (see test/cluster/lab.ts and docs/design/lab.md).
export async function labCmd(sub: string | undefined, _args: string[]): Promise<number> {
  throw new Error(`lab ${sub ?? ''}: not available yet`);
}
