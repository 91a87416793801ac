// Golden traces for the Raft core, in the spirit of etcd-raft's testdata/*.txt: a scenario file is a
// list of commands; each command prints what the cores did (messages, persisted state, committed
// entries, read states), and the printed trace IS the assertion. A reader sees an election or a read
// step by step without reading test code, and any change in behaviour shows up as a diff of the trace.
//
// File format (one block per command):
//
//     # a comment (kept, not executed)
//     command arg arg
//     ----
//     expected output, possibly several lines
//     (a blank line ends the block)
//
// The driver owns the "network": messages a core emits go into one FIFO queue, and `deliver` /
// `stabilize` step them into their recipients. Nothing here has a clock or randomness: ticks are
// commands, and every core's election timeout is fixed (jitter draws 0) so traces are stable.
import { RaftCore } from '../../../manager/raft/core.ts';
import type { Entry, Message, NodeId, Snapshot } from '../../../manager/raft/types.ts';

export interface Block {
  /** 1-based line of the command in the scenario file. */
  line: number;
  comments: string[];
  command: string;
  expected: string;
}

export function parseScenario(text: string): Block[] {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  let comments: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (l.trim() === '') continue;
    if (l.startsWith('#')) {
      comments.push(l);
      continue;
    }
    const command = l.trim();
    if (lines[i + 1] !== '----') throw new Error(`line ${i + 2}: expected "----" after command ${JSON.stringify(command)}`);
    const out: string[] = [];
    let j = i + 2;
    while (j < lines.length && lines[j] !== '') out.push(lines[j++]!);
    blocks.push({ line: i + 1, comments, command, expected: out.join('\n') });
    comments = [];
    i = j;
  }
  return blocks;
}

export function formatScenario(blocks: { comments: string[]; command: string; expected: string }[]): string {
  return blocks.map((b) => [...b.comments, b.command, '----', ...(b.expected ? [b.expected] : [])].join('\n')).join('\n\n') + '\n';
}

const dec = new TextDecoder();
const enc = new TextEncoder();

function entryText(e: Entry): string {
  if (e.type === 'conf') {
    const cc = JSON.parse(dec.decode(e.data)) as { type: string; node: string };
    return `${e.term}/${e.index} conf ${cc.type} ${cc.node}`;
  }
  return `${e.term}/${e.index} ${e.data.length === 0 ? 'noop' : JSON.stringify(dec.decode(e.data))}`;
}

/** One line per message, fields shown only where they mean something for its type (see types.ts). */
export function messageText(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} term=${m.term}`;
  switch (m.type) {
    case 'preVote':
    case 'vote':
      return `${head} last=${m.logTerm}/${m.index}${m.context ? ` ${m.context}` : ''}`;
    case 'preVoteResp':
    case 'voteResp':
      return `${head}${m.reject ? ' REJECT' : ''}`;
    case 'app':
      return `${head} prev=${m.logTerm}/${m.index} commit=${m.commit} entries=[${m.entries.map(entryText).join(', ')}]`;
    case 'appResp':
      return m.reject ? `${head} REJECT index=${m.index} hint=${m.logTerm}/${m.rejectHint}` : `${head} match=${m.index}`;
    case 'heartbeat':
      return `${head} commit=${m.commit}${m.context ? ` ctx=${m.context}` : ''}`;
    case 'heartbeatResp':
      return `${head}${m.context ? ` ctx=${m.context}` : ''}`;
    case 'readIndex':
      return `${head} ctx=${m.context}`;
    case 'readIndexResp':
      return `${head} ctx=${m.context} index=${m.index}${m.reject ? ' REJECT' : ''}`;
    case 'snap':
      return `${head} snapshot=${m.snapshot?.meta.term}/${m.snapshot?.meta.index} bytes=${m.snapshot?.offset}+${m.snapshot?.data.length}/${m.snapshot?.total}`;
    case 'snapResp':
      return `${head} index=${m.index}${m.reject ? ' REJECT' : ''}`;
    case 'timeoutNow':
      return head;
  }
}

interface SimNode {
  core: RaftCore;
  /** What the node "persisted" and "applied": enough to print and to check. */
  applied: Entry[];
}

export class GoldenDriver {
  private nodes = new Map<NodeId, SimNode>();
  private queue: Message[] = [];
  /** Pairs that cannot talk (both directions), as "a|b" with a < b. */
  private cut = new Set<string>();

  run(command: string): string {
    const [cmd, ...args] = command.split(/\s+/);
    const out: string[] = [];
    switch (cmd) {
      case 'nodes':
        this.addNodes(Number(args[0]));
        break;
      case 'tick': {
        const n = Number(args[1] ?? 1);
        for (let i = 0; i < n; i++) this.node(args[0]!).core.tick();
        break;
      }
      case 'campaign': {
        // Ticks one node until it starts an election (its timeout is fixed, see addNodes).
        const node = this.node(args[0]!);
        const before = node.core.stats.electionsStarted;
        for (let i = 0; i < 100 && node.core.stats.electionsStarted === before && node.core.role === 'follower'; i++) node.core.tick();
        break;
      }
      case 'propose':
        this.node(args[0]!).core.propose(enc.encode(args.slice(1).join(' ')));
        break;
      case 'read':
        this.node(args[0]!).core.readIndex(args[1]!);
        break;
      case 'transfer':
        this.node(args[0]!).core.transferLeadership(args[1]!);
        break;
      case 'process':
        for (const id of args.length ? args : this.ids()) this.process(id, out);
        break;
      case 'deliver':
        this.deliver(out, args[0]);
        break;
      case 'stabilize':
        this.stabilize(out);
        break;
      case 'partition':
        this.partition(args.join(' '));
        break;
      case 'heal':
        this.cut.clear();
        break;
      case 'status':
        for (const id of args.length ? args : this.ids()) out.push(this.status(id));
        break;
      case 'log':
        for (const id of args.length ? args : this.ids()) {
          const c = this.node(id).core;
          const entries: string[] = [];
          for (let i = c.log.firstIndex(); i <= c.log.lastIndex(); i++) entries.push(entryText(c.log.entry(i)!));
          out.push(`${id}: ${entries.join(', ')}`);
        }
        break;
      default:
        throw new Error(`unknown command ${JSON.stringify(cmd)}`);
    }
    return out.join('\n');
  }

  private ids(): NodeId[] {
    return [...this.nodes.keys()];
  }

  private node(id: string): SimNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  private addNodes(count: number): void {
    const ids = Array.from({ length: count }, (_, i) => `n${i + 1}`);
    const boot = RaftCore.bootstrapEntries(ids);
    for (const id of ids) {
      const core = new RaftCore(
        // Jitter 1 with random() = 0: every election timeout is exactly 10 ticks, so who campaigns
        // first is decided by the scenario's `tick`/`campaign` commands, not by chance.
        { id, electionTicks: 10, electionJitterTicks: 1, heartbeatTicks: 5, random: () => 0 },
        { hardState: { term: 1, vote: null, commit: boot.length }, snapshot: null as Snapshot | null, entries: boot },
      );
      this.nodes.set(id, { core, applied: [] });
    }
    // Drain the bootstrap Ready (the committed conf entries) so traces start from a quiet cluster.
    for (const id of ids) this.process(id, []);
  }

  /** Drains one node's Ready: prints what it persists, sends, commits and reads, then advances. */
  private process(id: NodeId, out: string[]): void {
    const n = this.node(id);
    if (!n.core.hasReady()) return;
    const rd = n.core.ready();
    if (rd.hardState) out.push(`${id}: persist term=${rd.hardState.term} vote=${rd.hardState.vote ?? '-'} commit=${rd.hardState.commit}`);
    if (rd.entries.length) out.push(`${id}: append ${rd.entries.map(entryText).join(', ')}`);
    if (rd.snapshot) out.push(`${id}: install snapshot ${rd.snapshot.meta.term}/${rd.snapshot.meta.index}`);
    if (rd.committed.length) out.push(`${id}: apply ${rd.committed.map(entryText).join(', ')}`);
    for (const r of rd.readStates) out.push(`${id}: read ctx=${r.ctx} index=${r.index}${r.index < 0 ? ' (failed: retry)' : ''}`);
    for (const m of rd.messages) {
      out.push(`  ${messageText(m)}`);
      this.queue.push(m);
    }
    n.applied.push(...rd.committed);
    n.core.advance();
  }

  /** Steps every queued message (or only those to `to`) into its recipient; cut links drop them. */
  private deliver(out: string[], to?: string): number {
    const now = this.queue.filter((m) => to === undefined || m.to === to);
    this.queue = this.queue.filter((m) => !now.includes(m));
    for (const m of now) {
      if (this.isCut(m.from, m.to)) {
        out.push(`  dropped ${messageText(m)}`);
        continue;
      }
      const r = this.nodes.get(m.to);
      if (r) r.core.step(m);
    }
    return now.length;
  }

  /** Process and deliver until nothing is left: the usual way to let a step play out. */
  private stabilize(out: string[]): void {
    for (let round = 0; round < 1000; round++) {
      let progressed = false;
      for (const id of this.ids()) {
        if (this.node(id).core.hasReady()) {
          this.process(id, out);
          progressed = true;
        }
      }
      if (this.queue.length > 0) {
        this.deliver(out);
        progressed = true;
      }
      if (!progressed) return;
    }
    throw new Error('stabilize: no quiescence after 1000 rounds');
  }

  private partition(spec: string): void {
    const groups = spec.split('|').map((g) => g.trim().split(/\s+/).filter(Boolean));
    this.cut.clear();
    for (let i = 0; i < groups.length; i++) {
      for (let j = i + 1; j < groups.length; j++) {
        for (const a of groups[i]!) for (const b of groups[j]!) this.cut.add([a, b].sort().join('|'));
      }
    }
  }

  private isCut(a: string, b: string): boolean {
    return this.cut.has([a, b].sort().join('|'));
  }

  private status(id: NodeId): string {
    const c = this.node(id).core;
    return `${id}: ${c.role} term=${c.term} leader=${c.leader ?? '-'} commit=${c.commit} applied=${c.applied} last=${c.log.lastTerm()}/${c.log.lastIndex()}`;
  }
}
