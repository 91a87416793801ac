// Image references as Docker reads them: `[registry[:port]/]path[:tag][@sha256:<hex>]`.
//
// The first path component is a registry host only when it contains a '.' or a ':', is `localhost`, or has
// an uppercase letter; otherwise the image lives on Docker Hub (`docker.io`), and a one-component path gets
// the `library/` prefix. The familiar name (what `docker images` shows, and what the image store records)
// drops `docker.io/` and `library/` again. See docs/design/images.md.
import { ImageError } from './archive.ts';

export const DOCKER_HUB = 'docker.io';
/** Where Docker Hub's registry API is served (`docker.io` itself is not a registry endpoint). */
export const DOCKER_HUB_ENDPOINT = 'registry-1.docker.io';

export interface ImageReference {
  /** Registry host, with its port if one was given: `docker.io`, `127.0.0.1:5000`, `[::1]:5000`. Lowercase. */
  registry: string;
  /** Repository path inside the registry: `library/busybox`, `team/app`. */
  repository: string;
  /** The tag; `latest` when the reference had neither a tag nor a digest. */
  tag?: string;
  /** `sha256:<hex>` when the reference pins a manifest digest. */
  digest?: string;
  /** The familiar name the image store records: `busybox:latest`, `127.0.0.1:5000/app:1`, `app@sha256:…`. */
  name: string;
  /** The fully qualified name: `docker.io/library/busybox:latest`. */
  canonical: string;
}

const HOST_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const HOST_RE = new RegExp(`^(?:${HOST_COMPONENT}(?:\\.${HOST_COMPONENT})*|\\[[0-9a-fA-F:.]+\\])(?::([0-9]{1,5}))?$`);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const SHA256_RE = /^sha256:[a-f0-9]{64}$/;
const ANY_DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const MAX_NAME = 255;

function bad(ref: string, why: string): ImageError {
  return new ImageError(`invalid image reference ${JSON.stringify(ref)}: ${why}`);
}

/** True when the first path component of a name is a registry host rather than part of the repository. */
function looksLikeHost(c: string): boolean {
  return c.includes('.') || c.includes(':') || c === 'localhost' || c !== c.toLowerCase();
}

/** Parses a reference; errors name the part that is wrong. */
export function parseReference(ref: string): ImageReference {
  if (ref === '') throw bad(ref, 'it is empty');
  if (/\s/.test(ref)) throw bad(ref, 'it contains whitespace');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (SHA256_RE.test(d)) digest = d;
    else if (/^sha256:/i.test(d)) throw bad(ref, `invalid digest ${JSON.stringify(d)} (sha256 needs 64 lowercase hex digits)`);
    else if (ANY_DIGEST_RE.test(d)) throw bad(ref, `unsupported digest algorithm ${JSON.stringify(d.split(':')[0])} (only sha256)`);
    else throw bad(ref, `invalid digest ${JSON.stringify(d)} (expected sha256:<64 hex digits>)`);
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) {
    const t = rest.slice(colon + 1);
    if (!TAG_RE.test(t)) throw bad(ref, `invalid tag ${JSON.stringify(t)} (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')`);
    tag = t;
    rest = rest.slice(0, colon);
  }
  if (rest === '') throw bad(ref, 'the repository name is missing');
  const parts = rest.split('/');
  let registry = DOCKER_HUB;
  if (parts.length > 1 && looksLikeHost(parts[0]!)) {
    const host = parts.shift()!;
    const m = HOST_RE.exec(host);
    if (!m) throw bad(ref, `invalid registry host ${JSON.stringify(host)}`);
    if (m[1] !== undefined && (Number(m[1]) < 1 || Number(m[1]) > 65535)) throw bad(ref, `invalid registry port ${JSON.stringify(m[1])}`);
    registry = host.toLowerCase();
    if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = DOCKER_HUB;
  }
  for (const p of parts) {
    if (p === '') throw bad(ref, 'empty repository name component');
    if (PATH_COMPONENT_RE.test(p)) continue;
    if (PATH_COMPONENT_RE.test(p.toLowerCase())) throw bad(ref, `repository name component ${JSON.stringify(p)} must be lowercase`);
    throw bad(ref, `invalid repository name component ${JSON.stringify(p)} (lowercase letters, digits and single '.', '_', '__' or '-' separators)`);
  }
  if (registry === DOCKER_HUB && parts.length === 1) parts.unshift('library');
  const repository = parts.join('/');
  if (`${registry}/${repository}`.length > MAX_NAME) throw bad(ref, `the name is longer than ${MAX_NAME} characters`);
  if (tag === undefined && digest === undefined) tag = 'latest';
  const suffix = `${tag !== undefined ? `:${tag}` : ''}${digest !== undefined ? `@${digest}` : ''}`;
  const familiarRepo =
    registry !== DOCKER_HUB
      ? `${registry}/${repository}`
      : repository.startsWith('library/') && repository.split('/').length === 2
        ? repository.slice(8)
        : repository;
  return {
    registry,
    repository,
    ...(tag !== undefined ? { tag } : {}),
    ...(digest !== undefined ? { digest } : {}),
    name: familiarRepo + suffix,
    canonical: `${registry}/${repository}${suffix}`,
  };
}

/** The familiar name of a reference (`docker.io/library/busybox` → `busybox:latest`), or null if it is invalid. */
export function familiarName(ref: string): string | null {
  try {
    return parseReference(ref).name;
  } catch {
    return null;
  }
}
