// Which service options a stack deploy uses, ignores or refuses, and the warning lines it prints. The
// first three tables follow `docker stack deploy` (its compose loader's lists of unsupported, deprecated
// and forbidden options, as of Docker 28); the rest are Shoal's, for options Docker's Swarm honours but
// Shoal's service spec cannot carry yet, and for Compose Specification options that the 3.x schema of
// `docker stack deploy` does not know. See docs/design/stacks.md for the reasoning.

/** Options a stack deploy converts into the service spec. */
export const SERVICE_OPTIONS = [
  'image',
  'command',
  'entrypoint',
  'environment',
  'env_file',
  'working_dir',
  'user',
  'hostname',
  'labels',
  'ports',
  'networks',
  'volumes',
  'tmpfs',
  'secrets',
  'configs',
  'healthcheck',
  'stop_grace_period',
  'stop_signal',
  'deploy',
  'cap_add',
  'cap_drop',
  'init',
  'read_only',
  'sysctls',
  'ulimits',
] as const;

/**
 * Ignored by `docker stack deploy` with "Ignoring unsupported options: …" (Docker's list), plus
 * depends_on, which Docker drops without a word (order of start has no meaning in a Swarm), and
 * Compose Specification options that describe local (`docker compose`) behaviour only.
 */
export const UNSUPPORTED_OPTIONS = [
  'build',
  'cgroupns_mode',
  'cgroup_parent',
  'devices',
  'domainname',
  'external_links',
  'ipc',
  'links',
  'mac_address',
  'network_mode',
  'pid',
  'privileged',
  'restart',
  'security_opt',
  'shm_size',
  'userns_mode',
  'depends_on',
  // Compose Specification, local-only:
  'profiles',
  'pull_policy',
  'platform',
  'scale',
  'develop',
  'attach',
  'runtime',
  'uts',
  'post_start',
  'pre_stop',
  'annotations',
  'use_api_socket',
  'models',
  'provider',
  'label_file',
  'gpus',
  'storage_opt',
  'blkio_config',
  'oom_kill_disable',
  'mem_swappiness',
  'cpu_count',
  'cpu_percent',
  'cgroup',
  'device_cgroup_rules',
  'driver_opts',
] as const;

/** Ignored by `docker stack deploy` with "Ignoring deprecated options:" and these reasons (Docker's). */
export const DEPRECATED_OPTIONS: Readonly<Record<string, string>> = {
  container_name: 'Setting the container name is not supported.',
  expose: "Exposing ports is unnecessary - services on the same network can access each other's containers on any port.",
};

/** Refused by `docker stack deploy`, with Docker's advice. */
export const FORBIDDEN_OPTIONS: Readonly<Record<string, string>> = {
  extends: 'Support for `extends` is not implemented yet.',
  volume_driver: 'Instead of setting the volume driver on the service, define a volume using the top-level `volumes` option and specify the driver there.',
  volumes_from:
    'To share a volume between services, define it using the top-level `volumes` option and reference it from each service that shares it using the service-level `volumes` option.',
  cpu_quota: 'Set resource limits using deploy.resources',
  cpu_shares: 'Set resource limits using deploy.resources',
  cpuset: 'Set resource limits using deploy.resources',
  mem_limit: 'Set resource limits using deploy.resources',
  memswap_limit: 'Set resource limits using deploy.resources',
  // Compose Specification resource options outside deploy (not in the 3.x format at all):
  cpus: 'Set resource limits using deploy.resources',
  mem_reservation: 'Set resource limits using deploy.resources',
  cpu_period: 'Set resource limits using deploy.resources',
  cpu_rt_runtime: 'Set resource limits using deploy.resources',
  cpu_rt_period: 'Set resource limits using deploy.resources',
  pids_limit: 'Set resource limits using deploy.resources.limits.pids',
};

/**
 * Honoured by Docker's Swarm but not by Shoal yet (its service spec has no field for them). The service
 * is deployed without them and one warning line names them. Refused instead when ignoring the option
 * would run the container with more privilege than the file asks for (REFUSED_UNHONOURED).
 */
export const UNHONOURED_OPTIONS = [
  'credential_spec',
  'dns',
  'dns_opt',
  'dns_search',
  'extra_hosts',
  'group_add',
  'isolation',
  'logging',
  'oom_score_adj',
  'stdin_open',
  'tty',
] as const;

/** Unhonoured options that are errors: dropping them would weaken the container's confinement. */
export const REFUSED_UNHONOURED: Readonly<Record<string, string>> = {};

/** Every service option the loader recognises, for "did you mean". */
export const ALL_SERVICE_OPTIONS: readonly string[] = [
  ...SERVICE_OPTIONS,
  ...UNSUPPORTED_OPTIONS,
  ...Object.keys(DEPRECATED_OPTIONS),
  ...Object.keys(FORBIDDEN_OPTIONS),
  ...UNHONOURED_OPTIONS,
  ...Object.keys(REFUSED_UNHONOURED),
];

/** Docker's warning line for ignored options (sorted, unique). */
export function unsupportedWarning(options: Iterable<string>): string {
  return `Ignoring unsupported options: ${[...new Set(options)].sort().join(', ')}`;
}

/** Docker's warning block for deprecated options: a header, a blank line, then `option: reason` lines. */
export function deprecatedWarning(options: Iterable<string>): string {
  const lines = [...new Set(options)].sort().map((o) => `${o}: ${DEPRECATED_OPTIONS[o] ?? ''}`);
  return `Ignoring deprecated options:\n\n${lines.join('\n')}`;
}

/** Shoal's line for options its spec cannot carry yet. */
export function unhonouredWarning(options: Iterable<string>): string {
  return `Not honoured by Shoal yet, deployed without them: ${[...new Set(options)].sort().join(', ')}`;
}
