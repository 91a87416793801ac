// `shoal cluster init|join|join-token|leave|inspect|update|ca`: creating and joining a cluster (through
// the local daemon's socket) and the cluster-wide settings (through the managers). Flags are declared in
// cli/commands.ts.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { RotationProgress } from '../api/ca-rotation.ts';
import type { Cluster } from '../api/objects.ts';
import type { Invocation } from './command.ts';
import {
  CliError,
  DEFAULT_STATE_DIR,
  contextPath,
  control,
  loadContext,
  localCall,
  parseDuration,
  renewAdmin,
  saveContext,
  type Context,
} from '../client/context.ts';
import { renderInspect, table } from './format.ts';

const stateDir = (i: Invocation) => resolve(i.value('state-dir') ?? DEFAULT_STATE_DIR);

interface InitAnswer {
  clusterId: string;
  nodeId: string;
  managers: string[];
  admin: Context['admin'];
  joinTokens: { worker: string; manager: string };
}
interface ForceNewAnswer {
  clusterId: string;
  managers: string[];
  recovered: { entriesReplayed: number; index: number; demoted: string[] };
}

const listenPort = (i: Invocation): { listenPort?: number } => {
  const p = i.value('listen-port');
  if (p === undefined) return {};
  const n = Number(p);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new CliError(`--listen-port must be 1..65535 (got ${JSON.stringify(p)})`);
  return { listenPort: n };
};

export async function clusterInit(i: Invocation): Promise<number> {
  if (i.positionals.length > 0) throw new CliError(`${i.name} takes no arguments`);
  const dir = stateDir(i);
  const path = contextPath(i.value('context'));
  if (i.flag('force-new-cluster')) {
    const r = await localCall<ForceNewAnswer>(dir, 'POST', '/init', { forceNewCluster: true });
    if (existsSync(path)) {
      const ctx = loadContext(path);
      if (ctx.clusterId === r.clusterId) saveContext(path, { ...ctx, managers: r.managers });
    }
    console.log(`Forced a new cluster from this manager's state (${r.recovered.entriesReplayed} log entries replayed, index ${r.recovered.index}).`);
    if (r.recovered.demoted.length > 0)
      console.log(`Demoted ${r.recovered.demoted.length} unreachable managers to workers; promote nodes again to restore fault tolerance.`);
    return 0;
  }
  const r = await localCall<InitAnswer>(dir, 'POST', '/init', { advertiseAddr: i.value('advertise-addr'), ...listenPort(i) });
  saveContext(path, { clusterId: r.clusterId, managers: r.managers, admin: r.admin });
  console.log(`Cluster initialized: this node (${r.nodeId}) is now a manager.\n`);
  console.log(`To add a worker to this cluster, run on the worker:\n\n    shoal cluster join --token ${r.joinTokens.worker} ${r.managers[0]}\n`);
  console.log(`To add a manager, run \`shoal cluster join-token manager\` and follow the instructions.`);
  console.log(`Admin credentials written to ${path}`);
  if (i.flag('autolock')) {
    const ctx: Context = { ...loadContext(path), path };
    await control(ctx, 'POST', '/v1/cluster/update', { autolock: true });
    printUnlockKey((await control<{ unlockKey: string | null }>(ctx, 'GET', '/v1/cluster/unlock-key')).unlockKey);
  }
  return 0;
}

function printUnlockKey(key: string | null, quiet = false): void {
  if (key === null) throw new CliError('autolock is off: this cluster has no unlock key');
  if (quiet) console.log(key);
  else
    console.log(
      `\nAutolock is on. To unlock a restarted manager, run \`shoal cluster unlock\` on it and give this key:\n\n    ${key}\n\nKeep it somewhere safe: without it a restarted manager stays locked.`,
    );
}

/** `cluster unlock`: the key from stdin (piped) or a prompt, sent to the local daemon over its socket. */
export async function clusterUnlock(i: Invocation): Promise<number> {
  if (i.positionals.length > 0) throw new CliError(`${i.name} takes no arguments (the key is read from stdin)`);
  let key: string;
  if (process.stdin.isTTY) {
    const { createInterface } = await import('node:readline/promises');
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    try {
      key = await rl.question('Unlock key: ');
    } finally {
      rl.close();
    }
  } else {
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of process.stdin as AsyncIterable<Buffer>) {
      n += c.length;
      if (n > 4096) throw new CliError('cluster unlock: the key on stdin is longer than 4 KiB');
      chunks.push(c);
    }
    key = Buffer.concat(chunks).toString('utf8');
  }
  if (key.trim() === '') throw new CliError('cluster unlock needs the unlock key (stdin or prompt)');
  await localCall(stateDir(i), 'POST', '/unlock', { key: key.trim() });
  console.log('Manager unlocked.');
  return 0;
}

export async function clusterUnlockKey(i: Invocation): Promise<number> {
  if (i.positionals.length > 0) throw new CliError(`${i.name} takes no arguments`);
  const ctx = i.context();
  const r = i.flag('rotate')
    ? await control<{ unlockKey: string }>(ctx, 'POST', '/v1/cluster/unlock-key/rotate')
    : await control<{ unlockKey: string | null }>(ctx, 'GET', '/v1/cluster/unlock-key');
  printUnlockKey(r.unlockKey, i.flag('quiet'));
  return 0;
}

export async function clusterJoin(i: Invocation): Promise<number> {
  const token = i.value('token');
  if (!token) throw new CliError('cluster join needs --token');
  if (i.positionals.length !== 1) throw new CliError('cluster join needs exactly one manager address (host[:port])');
  const r = await localCall<{ role: string; nodeId: string }>(stateDir(i), 'POST', '/join', {
    token,
    remote: i.positionals[0],
    advertiseAddr: i.value('advertise-addr'),
    ...listenPort(i),
  });
  console.log(`This node joined the cluster as a ${r.role} (node id ${r.nodeId}).`);
  return 0;
}

export async function clusterLeave(i: Invocation): Promise<number> {
  const r = await localCall<{ left: string }>(stateDir(i), 'POST', '/leave', { force: i.flag('force') });
  console.log(`Node left cluster ${r.left}.`);
  return 0;
}

export async function clusterJoinToken(i: Invocation): Promise<number> {
  const role = i.positionals[0];
  if ((role !== 'worker' && role !== 'manager') || i.positionals.length !== 1) throw new CliError('cluster join-token needs worker or manager');
  const ctx = i.context();
  if (i.flag('rotate')) await control(ctx, 'POST', '/v1/join-tokens/rotate', { role });
  const t = await control<{ worker: string; manager: string; managers: string[] }>(ctx, 'GET', '/v1/join-tokens');
  if (i.flag('quiet')) console.log(t[role]);
  else console.log(`To add a ${role} to this cluster, run:\n\n    shoal cluster join --token ${t[role]} ${t.managers[0]}\n`);
  return 0;
}

export async function clusterInspect(i: Invocation): Promise<number> {
  const c = await control<Cluster>(i.context(), 'GET', '/v1/cluster');
  const format = i.output.format;
  // Docker prints one object for `swarm inspect`-like commands; keep that unless a template is given.
  console.log(format === undefined || format === 'json' ? JSON.stringify(c, null, 2) : renderInspect([c], format));
  return 0;
}

/** `cluster update` limit flags → the `limits` keys of POST /v1/cluster/update (see manager/store/limits.ts). */
export const LIMIT_FLAGS: Record<string, { key: string; bytes: boolean }> = {
  'max-replicas': { key: 'maxReplicas', bytes: false },
  'max-tasks': { key: 'maxTasks', bytes: false },
  'max-object-size': { key: 'maxObjectBytes', bytes: true },
  'max-labels': { key: 'maxLabels', bytes: false },
  'max-label-key-size': { key: 'maxLabelKeyBytes', bytes: true },
  'max-label-value-size': { key: 'maxLabelValueBytes', bytes: true },
  'max-name-length': { key: 'maxNameLength', bytes: false },
};

export async function clusterUpdate(i: Invocation): Promise<number> {
  const body: { heartbeatPeriodMs?: number; nodeCertValidityMs?: number; limits?: Record<string, number>; autolock?: boolean } = {};
  const al = i.value('autolock');
  if (al !== undefined) {
    if (al !== 'true' && al !== 'false') throw new CliError(`--autolock must be true or false (got ${JSON.stringify(al)})`);
    body.autolock = al === 'true';
  }
  const hb = i.value('dispatcher-heartbeat');
  const ce = i.value('cert-expiry');
  if (hb) body.heartbeatPeriodMs = parseDuration(hb, '--dispatcher-heartbeat');
  if (ce) body.nodeCertValidityMs = parseDuration(ce, '--cert-expiry');
  const limits: Record<string, number> = {};
  for (const [flagName, { key, bytes }] of Object.entries(LIMIT_FLAGS)) {
    const v = i.value(flagName);
    if (v === undefined) continue;
    const { parseMemory } = await import('./service-flags.ts');
    const n = bytes ? parseMemory(v, `--${flagName}`) : Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new CliError(`--${flagName}: expected a whole number (got ${JSON.stringify(v)})`);
    limits[key] = n;
  }
  if (Object.keys(limits).length > 0) body.limits = limits;
  if (Object.keys(body).length === 0)
    throw new CliError(
      `cluster update needs at least one of --autolock, --dispatcher-heartbeat, --cert-expiry, ${Object.keys(LIMIT_FLAGS)
        .map((f) => `--${f}`)
        .join(', ')}`,
    );
  await control(i.context(), 'POST', '/v1/cluster/update', body);
  console.log('Cluster updated.');
  if (body.autolock === true) printUnlockKey((await control<{ unlockKey: string | null }>(i.context(), 'GET', '/v1/cluster/unlock-key')).unlockKey);
  return 0;
}

export async function clusterCa(i: Invocation): Promise<number> {
  const issue = i.value('issue-admin');
  const revoke = i.value('revoke-admin');
  const chosen = [i.flag('rotate-node-certs'), issue !== undefined, revoke !== undefined, i.flag('admins'), i.flag('rotate'), i.flag('renew-admin')].filter(
    Boolean,
  ).length;
  if (chosen > 1)
    throw new CliError(
      'cluster ca takes at most one of --rotate, --rotate-node-certs, --issue-admin NAME, --revoke-admin NAME|SERIAL, --admins, --renew-admin',
    );
  if (!i.flag('rotate') && (i.value('cert') !== undefined || i.value('key') !== undefined || i.flag('detach')))
    throw new CliError('--cert, --key and --detach go with --rotate');
  if (chosen === 0) return caShow(i);
  if (i.flag('rotate')) return caRotate(i);
  if (i.flag('renew-admin')) {
    await renewOwnAdmin(i.context());
    return 0;
  }
  if (issue !== undefined) return caIssueAdmin(i, issue);
  if (revoke !== undefined) {
    const r = await control<{ revoked: { name: string; serial: string } }>(i.context(), 'POST', '/v1/ca/admins/revoke', { ref: revoke });
    console.log(`Revoked the admin certificate of ${r.revoked.name} (serial ${r.revoked.serial}); it is refused from now on.`);
    return 0;
  }
  if (i.flag('admins')) {
    const list = await control<{ name: string; serial: string; notAfter: string; revoked: boolean }[]>(i.context(), 'GET', '/v1/ca/admins');
    if (i.output.format === 'json') console.log(JSON.stringify(list, null, 2));
    else {
      console.log(table([['NAME', 'SERIAL', 'EXPIRES', 'REVOKED'], ...list.map((a) => [a.name, a.serial, a.notAfter, a.revoked ? 'yes' : 'no'])]));
    }
    return 0;
  }
  const r = await control<{ notified: number }>(i.context(), 'POST', '/v1/cluster/rotate-node-certs');
  console.log(`Asked ${r.notified} connected nodes to renew their certificates.`);
  return 0;
}

/** `cluster ca --issue-admin NAME [--expiry D] [--output FILE]`: a key made here, a certificate for it. */
async function caIssueAdmin(i: Invocation, name: string): Promise<number> {
  const ctx = i.context();
  const expiry = i.value('expiry');
  const { createCsr, generateKeyPem } = await import('../manager/ca/pki.ts');
  const key = await generateKeyPem();
  const r = await control<{ name: string; serial: string; notAfter: string; certPem: string; caCertPem: string; clusterId: string; managers: string[] }>(
    ctx,
    'POST',
    '/v1/ca/admins',
    {
      name,
      csr: createCsr({ keyPem: key, nodeId: 'admin' }),
      ...(expiry ? { validityMs: parseDuration(expiry, '--expiry') } : {}),
    },
  );
  const next: Context = {
    clusterId: r.clusterId,
    managers: r.managers.length > 0 ? r.managers : ctx.managers,
    admin: { key, cert: r.certPem, ca: r.caCertPem },
  };
  const out = i.value('output');
  if (out) {
    saveContext(resolve(out), next);
    console.log(
      `Admin certificate for ${r.name} (serial ${r.serial}, valid until ${r.notAfter}) written to ${resolve(out)}; use it with --context ${resolve(out)} or SHOAL_CONTEXT.`,
    );
  } else {
    console.log(JSON.stringify(next, null, 2));
  }
  return 0;
}

function describeCa(s: RotationProgress): string {
  if (s.phase === 'idle') return `Root CA ${s.rootDigest}${s.lastRotatedAt ? ` (rotated ${s.lastRotatedAt})` : ''}; no rotation in progress.`;
  const pend = s.pending.map((n) => `${n.hostname} (${n.state})`).join(', ');
  return [
    `Root CA rotation to ${s.newRootDigest}${s.external ? ' (external root)' : ''}, started ${s.startedAt}: ${s.reissued}/${s.nodes} nodes on the new root.`,
    ...(s.pending.length > 0
      ? [
          `  still on the old root: ${pend}${s.pending.some((n) => n.state === 'down') ? ' (down nodes block completion: bring them back or `node rm` them)' : ''}`,
        ]
      : []),
    ...(s.adminsPending?.length ? [`  admin certificates not yet reissued (refused once the rotation completes): ${s.adminsPending.join(', ')}`] : []),
  ].join('\n');
}

async function caShow(i: Invocation): Promise<number> {
  const s = await control<RotationProgress>(i.context(), 'GET', '/v1/ca/rotation');
  console.log(i.output.format === 'json' ? JSON.stringify(s, null, 2) : describeCa(s));
  return 0;
}

/**
 * `cluster ca --rotate [--cert F --key F] [--detach]`: starts the rotation, moves this context's own admin
 * certificate to the new root at once (an admin certificate of the old root is refused after completion),
 * then waits for completion, printing progress, and renews once more for the new root as trust anchor.
 */
async function caRotate(i: Invocation): Promise<number> {
  const ctx = i.context();
  const certFile = i.value('cert');
  const keyFile = i.value('key');
  if ((certFile === undefined) !== (keyFile === undefined)) throw new CliError('--cert and --key go together (an external root needs its key)');
  const { readFileSync } = await import('node:fs');
  const read = (f: string, flag: string) => {
    try {
      return readFileSync(resolve(f), 'utf8');
    } catch (e) {
      throw new CliError(`${flag}: ${(e as Error).message}`);
    }
  };
  const body = certFile && keyFile ? { certPem: read(certFile, '--cert'), keyPem: read(keyFile, '--key') } : {};
  let s = await control<RotationProgress>(ctx, 'POST', '/v1/ca/rotate', body);
  console.log(`Root CA rotation started: new root ${s.newRootDigest}.`);
  await renewOwnAdmin(ctx);
  if (i.flag('detach')) {
    console.log(describeCa(s));
    return 0;
  }
  let last = '';
  while (s.phase === 'rotating') {
    const line = describeCa(s);
    if (line !== last) console.log(line);
    last = line;
    await new Promise((r) => setTimeout(r, 1000));
    s = await control<RotationProgress>(ctx, 'GET', '/v1/ca/rotation');
  }
  await renewOwnAdmin(ctx);
  console.log(`Root CA rotation complete: every node is on root ${s.rootDigest}; the old root is no longer trusted.`);
  return 0;
}

/** Renews the context's admin certificate (fresh key made here) and rewrites the context file. */
async function renewOwnAdmin(ctx: Context): Promise<void> {
  const { notAfter } = await renewAdmin(ctx);
  console.log(`Renewed the admin certificate${ctx.path ? ` in ${ctx.path}` : ''} (valid until ${notAfter}).`);
}
