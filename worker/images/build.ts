// Builds small OCI images locally, without a registry or Docker: the demo web image `shoal lab up`
// deploys, and the images the end-to-end tests use. Each image is one or two gzip layers made from
// Debian's static busybox (`busybox-static`) plus a few files, written as an OCI image layout tar that
// `shoal image load` accepts. Same inputs → same bytes (fixed mtimes, sorted entries).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { ustarHeader } from './tar-write.ts';

export interface BuildEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink';
  data?: Buffer | string;
  mode?: number;
  linkname?: string;
}

export interface BuildSpec {
  name: string;
  layers: BuildEntry[][];
  cmd?: string[];
  entrypoint?: string[];
  env?: string[];
  workdir?: string;
  exposedPorts?: string[];
  healthcheck?: { test: string[]; intervalNs?: number };
}

const MTIME = 1_700_000_000;

function header(name: string, flag: string, size: number, mode: number, linkname = ''): Buffer {
  return ustarHeader(name, flag, size, { mode, mtime: MTIME, linkname });
}

function pad(n: number): Buffer {
  return Buffer.alloc((512 - (n % 512)) % 512);
}

/** A ustar archive of the entries (parents must be listed before children). */
export function tarOf(entries: readonly BuildEntry[]): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    if (e.type === 'dir') out.push(header(e.path.endsWith('/') ? e.path : `${e.path}/`, '5', 0, e.mode ?? 0o755));
    else if (e.type === 'symlink') out.push(header(e.path, '2', 0, 0o777, e.linkname ?? ''));
    else {
      const d = Buffer.from(e.data ?? '');
      out.push(header(e.path, '0', d.length, e.mode ?? 0o644), d, pad(d.length));
    }
  }
  out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** An OCI image layout, as a tar, holding one image. */
export function buildImage(spec: BuildSpec): { archive: Buffer; digest: string } {
  const files: [string, Buffer][] = [['oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}')]];
  const layerDescs: { mediaType: string; digest: string; size: number }[] = [];
  const diffIds: string[] = [];
  for (const entries of spec.layers) {
    const t = tarOf(entries);
    const gz = gzipSync(t, { level: 6 });
    diffIds.push(sha(t));
    layerDescs.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(gz), size: gz.length });
    files.push([`blobs/sha256/${sha(gz).slice(7)}`, gz]);
  }
  const config = Buffer.from(
    JSON.stringify({
      architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
      os: 'linux',
      created: new Date(MTIME * 1000).toISOString(),
      config: {
        Env: spec.env ?? ['PATH=/bin:/usr/bin:/sbin:/usr/sbin'],
        ...(spec.cmd ? { Cmd: spec.cmd } : {}),
        ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
        ...(spec.workdir ? { WorkingDir: spec.workdir } : {}),
        ...(spec.exposedPorts ? { ExposedPorts: Object.fromEntries(spec.exposedPorts.map((p) => [p, {}])) } : {}),
        ...(spec.healthcheck
          ? { Healthcheck: { Test: spec.healthcheck.test, ...(spec.healthcheck.intervalNs ? { Interval: spec.healthcheck.intervalNs } : {}) } }
          : {}),
      },
      rootfs: { type: 'layers', diff_ids: diffIds },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: layerDescs,
    }),
  );
  files.push([`blobs/sha256/${sha(config).slice(7)}`, config], [`blobs/sha256/${sha(manifest).slice(7)}`, manifest]);
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: sha(manifest),
          size: manifest.length,
          annotations: { 'org.opencontainers.image.ref.name': spec.name },
        },
      ],
    }),
  );
  files.push(['index.json', index]);
  return { archive: tarOf(files.map(([path, data]) => ({ path, type: 'file', data }))), digest: sha(config) };
}

export const BUSYBOX = '/bin/busybox';

/** The busybox layer: the static binary, every applet as a symlink, /etc basics, /tmp. */
export function busyboxLayer(applets?: string[]): BuildEntry[] {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: install Debian's busybox-static (scripts/install.sh does)`);
  const names = applets ?? [
    'sh',
    'ls',
    'cat',
    'echo',
    'sleep',
    'httpd',
    'hostname',
    'wget',
    'nc',
    'nslookup',
    'ping',
    'ip',
    'ps',
    'env',
    'id',
    'touch',
    'rm',
    'mkdir',
    'test',
    '[',
    'true',
    'false',
    'dd',
    'head',
    'grep',
    'seq',
    'date',
    'kill',
    'uname',
    'yes',
    'tail',
  ];
  return [
    { path: 'bin', type: 'dir' },
    { path: 'bin/busybox', type: 'file', data: readFileSync(BUSYBOX), mode: 0o755 },
    ...[...new Set(names)].sort().map((n) => ({ path: `bin/${n}`, type: 'symlink' as const, linkname: 'busybox' })),
    { path: 'etc', type: 'dir' },
    { path: 'etc/passwd', type: 'file', data: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' },
    { path: 'etc/group', type: 'file', data: 'root:x:0:\nnogroup:x:65534:\n' },
    { path: 'tmp', type: 'dir', mode: 0o1777 },
  ];
}

/**
 * The demo web image: busybox httpd on port 80 answering "Hello from <task hostname>" — each replica
 * says who it is, so load balancing is visible with curl.
 */
export function demoWebImage(name = 'shoal/demo-web:1'): { archive: Buffer; digest: string } {
  const start = [
    'mkdir -p /www',
    'printf "Hello from %s\\n" "$(hostname)" > /www/index.html',
    'echo "web: $(hostname) serving /www on :80"',
    // PID 1 gets no default signal handling: trap TERM so a stop is immediate, not a 10 s SIGKILL
    'trap "exit 0" TERM',
    'httpd -f -v -p 80 -h /www & wait',
  ].join('; ');
  return buildImage({
    name,
    layers: [
      busyboxLayer(),
      [
        { path: 'www', type: 'dir' },
        { path: 'www/index.html', type: 'file', data: 'Hello from shoal\n' },
      ],
    ],
    cmd: ['/bin/sh', '-c', start],
    exposedPorts: ['80/tcp'],
  });
}
