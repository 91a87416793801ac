// The deploy plan of a stack: given the converted stack (convert.ts) and the objects that exist now, the
// ordered steps that make the cluster match the file. Pure: the caller lists what exists and carries
// the steps out; running the same plan inputs twice gives the same steps.
//
// Rules:
//   * All-or-nothing: everything the plan can know is checked before the first step — external
//     networks, secrets and configs must exist; names the stack would create must not belong to
//     something outside the stack; a service may not change mode kind (replicated ↔ global, as Swarm
//     refuses). Any problem → PlanError listing all of them, and no steps.
//   * A redeploy of an unchanged file changes nothing: a service whose validated spec (and, once the
//     store carries them, secret/config references) equals the current one is `unchanged`.
//   * Networks are created when missing and otherwise left alone (Docker does not update networks;
//     options that differ are reported as warnings). Secrets and configs are created when missing and
//     updated when their labels differ (their data cannot change in place, as in Docker).
//   * `prune` removes the stack's services that the file no longer has (only services, as Docker).
//   * External objects are never created, updated or removed.
//   * A service's force-update counter is kept (a file cannot ask for --force), as Docker keeps it.
//   * Order, as Docker's: prunes, networks, secrets, configs, then services; names sorted in each group.
//   * Re-running after an interrupted deploy (leader lost half-way) just finishes: what was created is
//     found by name and label and planned as unchanged or update.
import type { Frozen, NetworkSpec, ServiceSpec } from '../api/objects.ts';
import { jsonEqual } from '../api/objects.ts';
import { modeKind, specDiff } from '../manager/service/spec.ts';
import { NAMESPACE_LABEL, type FileReference, type Stack, type StackFileObject, type StackNetwork, type StackService } from './convert.ts';

/** The name Shoal gives host networking: an external network of that name always exists. */
export const HOST_NETWORK_NAME = 'host';

export interface ExistingObject {
  id: string;
  name: string;
  labels: Readonly<Record<string, string>>;
}

export interface ExistingNetwork extends ExistingObject {
  spec?: NetworkSpec | Frozen<NetworkSpec>;
}

export interface ExistingService extends ExistingObject {
  spec: ServiceSpec | Frozen<ServiceSpec>;
  /** Present once the store keeps secret/config references; then they are compared too. */
  secrets?: readonly FileReference[];
  configs?: readonly FileReference[];
}

/** What exists now. Pass every object of each kind (not only the stack's): conflicts are found by name. */
export interface Existing {
  services: readonly ExistingService[];
  networks: readonly ExistingNetwork[];
  secrets: readonly ExistingObject[];
  configs: readonly ExistingObject[];
}

export type PlanStep =
  | { action: 'remove'; kind: 'service' | 'secret' | 'config' | 'network'; name: string; id: string }
  | { action: 'create'; kind: 'network'; name: string; network: StackNetwork }
  | { action: 'create'; kind: 'secret' | 'config'; name: string; object: StackFileObject }
  | { action: 'update'; kind: 'secret' | 'config'; name: string; id: string; object: StackFileObject }
  | { action: 'create'; kind: 'service'; name: string; service: StackService }
  | { action: 'update'; kind: 'service'; name: string; id: string; service: StackService; changed: string[] }
  | { action: 'unchanged'; kind: 'service' | 'network' | 'secret' | 'config'; name: string; id: string };

export interface DeployPlan {
  namespace: string;
  steps: PlanStep[];
  /** Things the deploy will not change although the file differs (network options). */
  warnings: string[];
}

export class PlanError extends Error {
  readonly code = 'ESTACKPLAN';
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'PlanError';
    this.problems = problems;
  }
}

const byName = <T extends { name: string }>(a: T, b: T) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

function find<T extends ExistingObject>(list: readonly T[], name: string): T | undefined {
  return list.find((o) => o.name === name);
}

function ours(o: ExistingObject, ns: string): boolean {
  return o.labels[NAMESPACE_LABEL] === ns;
}

export function planDeploy(stack: Stack, existing: Existing, opts: { prune: boolean } = { prune: false }): DeployPlan {
  const ns = stack.namespace;
  const problems: string[] = [];
  const warnings: string[] = [];
  const steps: PlanStep[] = [];

  // 1. Prunes.
  if (opts.prune) {
    const keep = new Set(stack.services.map((s) => s.name));
    for (const s of [...existing.services].sort(byName)) {
      if (ours(s, ns) && !keep.has(s.name)) steps.push({ action: 'remove', kind: 'service', name: s.name, id: s.id });
    }
  }

  // 2. Networks.
  for (const n of [...stack.networks].sort(byName)) {
    const cur = find(existing.networks, n.name);
    if (n.external) {
      if (!cur && n.name !== HOST_NETWORK_NAME)
        problems.push(`network ${n.name} is declared as external, but it does not exist: create it (shoal network create ${n.name}) before deploying`);
      continue;
    }
    if (!cur) steps.push({ action: 'create', kind: 'network', name: n.name, network: n });
    else if (!ours(cur, ns))
      problems.push(`network ${n.name} already exists and does not belong to stack ${ns}: rename the network in the file (name:) or remove the existing one`);
    else {
      if (cur.spec && n.spec && !jsonEqual(networkShape(cur.spec), networkShape(n.spec))) {
        warnings.push(
          `network ${n.name} exists with other options than the file gives; networks are not updated in place (remove the stack and deploy again to change them)`,
        );
      }
      steps.push({ action: 'unchanged', kind: 'network', name: n.name, id: cur.id });
    }
  }

  // 3, 4. Secrets and configs.
  for (const kind of ['secret', 'config'] as const) {
    const list = kind === 'secret' ? stack.secrets : stack.configs;
    const have = kind === 'secret' ? existing.secrets : existing.configs;
    for (const o of [...list].sort(byName)) {
      const cur = find(have, o.name);
      if (o.external) {
        if (!cur)
          problems.push(`${kind} ${o.name} is declared as external, but it does not exist: create it (shoal ${kind} create ${o.name} FILE) before deploying`);
        continue;
      }
      if (!cur) steps.push({ action: 'create', kind, name: o.name, object: o });
      else if (!ours(cur, ns))
        problems.push(`${kind} ${o.name} already exists and does not belong to stack ${ns}: give it another name in the file (name:) or use it as external`);
      else if (!jsonEqual(cur.labels, o.labels)) steps.push({ action: 'update', kind, name: o.name, id: cur.id, object: o });
      else steps.push({ action: 'unchanged', kind, name: o.name, id: cur.id });
    }
  }

  // 5. Services.
  for (const s of [...stack.services].sort(byName)) {
    const cur = find(existing.services, s.name);
    if (!cur) {
      steps.push({ action: 'create', kind: 'service', name: s.name, service: s });
      continue;
    }
    if (!ours(cur, ns)) {
      problems.push(`service ${s.name} already exists and does not belong to stack ${ns}: remove it, or deploy the stack under another name`);
      continue;
    }
    // A stack file has no --force: keep the service's force-update counter, so that a redeploy after
    // `service update --force` does not restart its tasks again (Docker does the same).
    let spec: ServiceSpec = cur.spec.task.forceUpdate ? { ...s.spec, task: { ...s.spec.task, forceUpdate: cur.spec.task.forceUpdate } } : s.spec;
    // An autoscaled service keeps the count the autoscaler chose (it brings it within new bounds itself),
    // as a Kubernetes Deployment under an HPA keeps its replicas when the manifest is re-applied.
    if (spec.autoscale && 'replicated' in spec.mode && 'replicated' in cur.spec.mode)
      spec = { ...spec, mode: { replicated: { replicas: cur.spec.mode.replicated.replicas } } };
    const desired: StackService = spec === s.spec ? s : { ...s, spec };
    const diff = specDiff(cur.spec, desired.spec);
    if (diff.modeKindChanged) {
      problems.push(
        `service ${s.name}: cannot change mode from ${modeKind(cur.spec.mode)} to ${modeKind(s.spec.mode)}; remove the service (or the stack) first`,
      );
      continue;
    }
    const changed: string[] = [...diff.changed];
    if (cur.secrets !== undefined && !jsonEqual(cur.secrets, s.secrets)) changed.push('secrets');
    if (cur.configs !== undefined && !jsonEqual(cur.configs, s.configs)) changed.push('configs');
    if (changed.length) steps.push({ action: 'update', kind: 'service', name: s.name, id: cur.id, service: desired, changed });
    else steps.push({ action: 'unchanged', kind: 'service', name: s.name, id: cur.id });
  }

  if (problems.length) throw new PlanError(problems);
  return { namespace: ns, steps, warnings };
}

/**
 * `stack rm NS`: every object labelled com.docker.stack.namespace=NS, in Docker's order (services, then
 * secrets, configs and networks, which services may still use until they are gone). Objects without the
 * label — external ones, or anything created outside the stack — are never included. No file needed.
 */
export function planRemove(namespace: string, existing: Existing): PlanStep[] {
  const steps: PlanStep[] = [];
  const mine = <T extends ExistingObject>(list: readonly T[]) => [...list].filter((o) => ours(o, namespace)).sort(byName);
  for (const s of mine(existing.services)) steps.push({ action: 'remove', kind: 'service', name: s.name, id: s.id });
  for (const kind of ['secret', 'config', 'network'] as const) {
    const list = kind === 'secret' ? existing.secrets : kind === 'config' ? existing.configs : existing.networks;
    for (const o of mine(list)) steps.push({ action: 'remove', kind, name: o.name, id: o.id });
  }
  return steps;
}

/** The parts of a network spec a stack file decides (the allocator may fill in the rest). */
function networkShape(s: NetworkSpec | Frozen<NetworkSpec>): unknown {
  return { driver: s.driver, labels: s.labels, attachable: s.attachable, internal: s.internal, subnets: s.ipam.configs.map((c) => c.subnet) };
}

/** The steps that change something (everything but `unchanged`). */
export function changes(plan: DeployPlan): PlanStep[] {
  return plan.steps.filter((s) => s.action !== 'unchanged');
}
