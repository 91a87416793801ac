// The tree's layering, enforced: a file may import only from its own folder's layer or a lower one, so
// wire types never come back up from a component and the manager and the worker never reach into each
// other. The order (lowest first) is the one the README's folder table describes:
//
//   api            wire types and pure spec vocabulary shared by every side (objects, dispatcher protocol,
//                  task status, network views, templates, file references, confinement, log chunks)
//   transport      one session's life, the HTTPS client          metrics   Prometheus registry, collectors
//   overlay-net    the overlay data plane
//   manager        control plane          |  worker   agent and engine (peers: neither imports the other)
//   stack, client  compose → specs; the control-API client and contexts
//   web            the dashboard's page (browser code; cli/dashboard serves it and shares web/protocol.ts)
//   daemon         one process composing a manager and an agent
//   lab            the multi-host lab (`shoal lab`, tests, benchmarks)
//   cli            the `shoal` command
// test/, bench/, sim/ and scripts/ sit above everything and may import anything.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const REPO = resolve(fileURLToPath(new URL('..', import.meta.url)));

const LAYER: Record<string, number> = {
  api: 0,
  transport: 1,
  metrics: 1,
  'overlay-net': 2,
  manager: 3,
  worker: 3,
  stack: 4,
  client: 4,
  web: 4,
  daemon: 5,
  lab: 6,
  cli: 7,
};
const TOP = new Set(['test', 'bench', 'sim', 'scripts']);

function imports(file: string): string[] {
  const text = readFileSync(join(file), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|^import\s+)'(\.{1,2}\/[^']+)'/gm)) out.push(m[1]!);
  return out;
}
const join = (f: string) => resolve(REPO, f);

test('no source file imports from a layer above its own, and manager and worker stay apart', () => {
  // A walk, not `git ls-files`: the unit tests run as `nobody`, for whom git refuses a root-owned checkout.
  const files = readdirSync(REPO, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .filter((f) => !/^(node_modules|dist|native|\.git)\//.test(f) && !f.includes('/node_modules/'));
  const violations: string[] = [];
  let checked = 0;
  for (const f of files) {
    const top = f.split('/')[0]!;
    if (TOP.has(top) || !f.includes('/')) continue;
    const mine = LAYER[top];
    if (mine === undefined) {
      violations.push(`${f}: its folder ${top}/ has no layer (add it to LAYER here and to the README's table)`);
      continue;
    }
    checked++;
    for (const spec of imports(f)) {
      const target = relative(REPO, resolve(REPO, dirname(f), spec));
      const other = target.split('/')[0]!;
      if (other === top) continue;
      const theirs = LAYER[other];
      if (theirs === undefined || theirs > mine || (theirs === mine && other !== top)) {
        violations.push(`${f} imports ${target} (${top}/ is layer ${mine}, ${other}/ is ${theirs ?? 'not a library layer'})`);
      }
    }
  }
  assert.ok(checked > 150, `checked only ${checked} files: is the layer table still matching the tree?`);
  assert.deepEqual(violations, []);
});
