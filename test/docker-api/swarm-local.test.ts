// `docker swarm init`, `leave` on the node's own docker.sock (the only place they are served): a
// daemon that belongs to no cluster answers info as inactive and every cluster call with the engine's
// "not a swarm manager"; `swarm init` makes it a manager and the same socket then serves the full
// API; `swarm leave` refuses a manager unless forced, then the node is inactive again.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { dockerCli, freePort, OneManager } from './harness.ts';

const cli = await dockerCli();
const skip = cli === null ? 'the docker CLI is not on PATH (the machine image ships docker 28.2.2)' : false;

describe('docker swarm init and leave on the local socket', { skip }, () => {
  const m = new OneManager();
  before(async () => m.start({ init: false }));
  after(async () => m.stop());

  it('is inactive and refuses cluster calls before init', async () => {
    const info = await m.docker(['info', '--format', '{{.Swarm.LocalNodeState}}']);
    assert.equal(info.code, 0, info.stderr);
    assert.equal(info.stdout.trim(), 'inactive');
    const ls = await m.docker(['node', 'ls']);
    assert.equal(ls.code, 1);
    assert.match(ls.stderr, /not a swarm manager/);
  });

  it('initialises a cluster with docker swarm init, then serves it', async () => {
    const port = await freePort();
    const r = await m.docker(['swarm', 'init', '--advertise-addr', '127.0.0.1', '--listen-addr', `127.0.0.1:${port}`], 60_000);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Swarm initialized: current node \([0-9a-z]{25}\) is now a manager/);
    assert.match(r.stdout, new RegExp(`docker swarm join --token \\S+ 127\\.0\\.0\\.1:${port}`));
    const ls = await m.docker(['node', 'ls', '--format', '{{.Hostname}} {{.ManagerStatus}}']);
    assert.equal(ls.stdout.trim(), 'shoal-dk1 Leader');
    const again = await m.docker(['swarm', 'init', '--advertise-addr', '127.0.0.1']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already part of a swarm/);
  });

  it('leaves only when forced (a manager), then is inactive again', async () => {
    const refused = await m.docker(['swarm', 'leave']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /manager/);
    const left = await m.docker(['swarm', 'leave', '--force'], 30_000);
    assert.equal(left.code, 0, left.stderr);
    assert.equal((await m.docker(['info', '--format', '{{.Swarm.LocalNodeState}}'])).stdout.trim(), 'inactive');
  });
});
