// IPAM: parsing with precise errors, overlaps, carving from the default pool around other networks and
// host routes, gateways, the address cursor (no immediate reuse, wrap-around), exhaustion, VNIs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AddressPool,
  IpamError,
  VNI_MAX,
  VNI_MIN,
  allocateVni,
  carveSubnet,
  checkSubnet,
  cidrsOverlap,
  formatIp,
  gatewayFor,
  parseCidr,
  parseIp,
  parsePool,
  parseSubnet,
} from '../../manager/allocator/ipam.ts';

function ipamError(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof IpamError, `expected an IpamError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, message);
    return true;
  });
}

test('parseIp / formatIp round-trip, and precise errors', () => {
  assert.equal(parseIp('0.0.0.0'), 0);
  assert.equal(parseIp('255.255.255.255'), 2 ** 32 - 1);
  assert.equal(parseIp('10.10.1.5'), 10 * 2 ** 24 + 10 * 2 ** 16 + 256 + 5);
  for (const s of ['10.10.1.5', '192.168.0.1', '1.2.3.4']) assert.equal(formatIp(parseIp(s)), s);
  ipamError(() => parseIp('10.0.0'), 'EINVALIDADDR', /"10\.0\.0" is not an IPv4 address/);
  ipamError(() => parseIp('10.0.0.256'), 'EINVALIDADDR', /256 is above 255/);
  ipamError(() => parseIp('10.0.0.01'), 'EINVALIDADDR', /01 has a leading zero/);
  ipamError(() => parseIp('gateway', 'gateway'), 'EINVALIDADDR', /^gateway "gateway" is not an IPv4 address/);
});

test('parseCidr: canonical form, prefix range, host bits', () => {
  const c = parseCidr('10.10.1.0/24');
  assert.deepEqual(
    { base: formatIp(c.base), prefix: c.prefix, size: c.size, last: formatIp(c.last), text: c.text },
    { base: '10.10.1.0', prefix: 24, size: 256, last: '10.10.1.255', text: '10.10.1.0/24' },
  );
  ipamError(() => parseCidr('10.10.1.0'), 'EINVALIDCIDR', /is not a CIDR/);
  ipamError(() => parseCidr('10.10.1.0/33'), 'EINVALIDCIDR', /prefix length must be a number 0-32/);
  ipamError(() => parseCidr('10.10.1.0/2a'), 'EINVALIDCIDR', /prefix length/);
  ipamError(() => parseCidr('10.10.1.1/24'), 'EINVALIDCIDR', /host bits set \(did you mean 10\.10\.1\.0\/24\?\)/);
  ipamError(() => parseCidr('10.10.300.0/24'), 'EINVALIDCIDR', /300 is above 255/);
  ipamError(() => parseSubnet('10.0.0.0/31'), 'ESUBNETSIZE', /too small/);
  ipamError(() => parseSubnet('10.0.0.0/7'), 'ESUBNETSIZE', /too large/);
  assert.equal(parseSubnet('10.0.0.0/30').size, 4);
});

test('overlaps: containment either way and adjacency', () => {
  const a = parseCidr('10.0.0.0/16');
  assert.ok(cidrsOverlap(a, parseCidr('10.0.5.0/24')));
  assert.ok(cidrsOverlap(parseCidr('10.0.5.0/24'), a));
  assert.ok(!cidrsOverlap(a, parseCidr('10.1.0.0/24')));
  assert.ok(!cidrsOverlap(parseCidr('10.0.0.0/25'), parseCidr('10.0.0.128/25')));
  // A user subnet that overlaps another network: the error names that network.
  ipamError(
    () =>
      checkSubnet('10.0.1.0/24', [
        { name: 'back', subnet: '10.1.0.0/16' },
        { name: 'front', subnet: '10.0.0.0/16' },
      ]),
    'EOVERLAP',
    /^subnet 10\.0\.1\.0\/24 overlaps network front \(10\.0\.0\.0\/16\)$/,
  );
  assert.equal(checkSubnet('10.2.0.0/24', [{ name: 'front', subnet: '10.0.0.0/16' }]).text, '10.2.0.0/24');
});

test('gateway: default first host; must be a host address inside the subnet', () => {
  const s = parseCidr('10.0.9.0/24');
  assert.equal(gatewayFor(s), '10.0.9.1');
  assert.equal(gatewayFor(s, '10.0.9.254'), '10.0.9.254');
  ipamError(() => gatewayFor(s, '10.0.10.1'), 'EGATEWAY', /^gateway 10\.0\.10\.1 is not inside subnet 10\.0\.9\.0\/24$/);
  ipamError(() => gatewayFor(s, '10.0.9.0'), 'EGATEWAY', /network address/);
  ipamError(() => gatewayFor(s, '10.0.9.255'), 'EGATEWAY', /broadcast address/);
  ipamError(() => gatewayFor(s, 'x'), 'EINVALIDADDR', /gateway "x"/);
});

test('carveSubnet: first free /24 of the pool, around networks and host routes', () => {
  const pool = { cidr: '10.10.0.0/16', size: 24 };
  assert.equal(carveSubnet(pool, []), '10.10.0.0/24');
  assert.equal(carveSubnet(pool, ['10.10.0.0/24', '10.10.1.0/24']), '10.10.2.0/24');
  // A larger network inside the pool is skipped as a whole; gaps before it are used.
  assert.equal(carveSubnet(pool, ['10.10.0.0/24', '10.10.2.0/23']), '10.10.1.0/24');
  assert.equal(carveSubnet(pool, ['10.10.0.0/24', '10.10.1.0/24', '10.10.2.0/23']), '10.10.4.0/24');
  // Host routes: a route inside the pool, and one covering a part of it; the default route is ignored.
  assert.equal(carveSubnet(pool, [], ['0.0.0.0/0', '10.10.0.0/24']), '10.10.1.0/24');
  assert.equal(carveSubnet(pool, [], ['10.10.0.0/20']), '10.10.16.0/24');
  // Routes that are not IPv4 CIDRs are ignored.
  assert.equal(carveSubnet(pool, [], ['fe80::/64', 'junk']), '10.10.0.0/24');
  // A route covering the whole pool exhausts it.
  ipamError(() => carveSubnet(pool, [], ['10.0.0.0/8']), 'EPOOLEXHAUSTED', /^the default address pool 10\.10\.0\.0\/16 has no free \/24 subnet left$/);
  // A /30 pool of /30 subnets: one subnet.
  assert.equal(carveSubnet({ cidr: '192.168.7.0/30', size: 30 }, []), '192.168.7.0/30');
  ipamError(() => carveSubnet({ cidr: '192.168.7.0/30', size: 30 }, ['192.168.7.0/30']), 'EPOOLEXHAUSTED', /no free \/30/);
  // A full pool of 256 /24s.
  const all = Array.from({ length: 256 }, (_, i) => `10.10.${i}.0/24`);
  ipamError(() => carveSubnet(pool, all), 'EPOOLEXHAUSTED', /no free/);
  assert.equal(
    carveSubnet(
      pool,
      all.filter((x) => x !== '10.10.200.0/24'),
    ),
    '10.10.200.0/24',
  );
});

test('parsePool: a pool and subnet size that make sense', () => {
  assert.deepEqual(parsePool({ cidr: '10.10.0.0/16', size: 24 }).size, 24);
  ipamError(() => parsePool({ cidr: '10.10.0.0/16', size: 12 }), 'EPOOL', /subnet size \/12 must be between \/16 and \/30/);
  ipamError(() => parsePool({ cidr: '10.10.0.0/16', size: 31 }), 'EPOOL', /between/);
  ipamError(() => parsePool({ cidr: '10.10.0.1/16', size: 24 }), 'EPOOL', /host bits/);
});

test('AddressPool: lowest free, skipping network, gateway and broadcast', () => {
  const p = new AddressPool('10.10.1.0/24', '10.10.1.1');
  assert.equal(p.capacity, 253);
  assert.equal(p.allocate(), '10.10.1.2');
  assert.equal(p.allocate(), '10.10.1.3');
  assert.equal(p.claim('10.10.1.4/24'), 'ok');
  assert.equal(p.allocate(), '10.10.1.5', 'claimed addresses are skipped');
  assert.equal(p.claim('10.10.1.4'), 'taken');
  assert.equal(p.claim('10.10.1.1'), 'reserved');
  assert.equal(p.claim('10.10.1.0'), 'reserved');
  assert.equal(p.claim('10.10.1.255'), 'reserved');
  assert.equal(p.claim('10.10.2.7'), 'outside');
  assert.equal(p.claim('not an ip'), 'outside');
  assert.equal(p.free, 249);
  // A gateway that is not the first address: .1 is a normal address then.
  const q = new AddressPool('10.0.0.0/29', '10.0.0.6');
  assert.deepEqual(
    [q.allocate(), q.allocate(), q.allocate(), q.allocate(), q.allocate(), q.allocate()],
    ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', null],
  );
});

test('AddressPool: a /30 holds exactly one address', () => {
  const p = new AddressPool('10.0.0.0/30', '10.0.0.1');
  assert.equal(p.capacity, 1);
  assert.equal(p.allocate(), '10.0.0.2');
  assert.equal(p.allocate(), null);
  assert.equal(p.free, 0);
  assert.ok(p.release('10.0.0.2/30'));
  assert.equal(p.allocate(), '10.0.0.2', 'the only address comes back once released');
});

test('AddressPool: the cursor — a just-released address is not reused at once; wrap-around', () => {
  const p = new AddressPool('10.0.0.0/29', '10.0.0.1'); // hosts .2-.6
  assert.equal(p.allocate(), '10.0.0.2');
  assert.equal(p.allocate(), '10.0.0.3');
  assert.ok(p.release('10.0.0.2'));
  assert.equal(p.allocate(), '10.0.0.4', 'not .2: the search continues after the last one handed out');
  assert.equal(p.allocate(), '10.0.0.5');
  assert.equal(p.allocate(), '10.0.0.6');
  assert.equal(p.allocate(), '10.0.0.2', 'wrapped around to the lowest free');
  assert.equal(p.allocate(), null);
  assert.ok(!p.release('10.0.0.1'), 'the gateway is never released');
  assert.ok(!p.release('10.0.0.7'));
  // The cursor survives a rebuild (the allocator persists lastAddr on the network).
  assert.equal(p.lastAddr, '10.0.0.2');
  const q = new AddressPool('10.0.0.0/29', '10.0.0.1', p.lastAddr);
  for (const a of ['10.0.0.3', '10.0.0.5']) q.claim(a);
  assert.equal(q.allocate(), '10.0.0.4', 'after .2, the lowest free is .4');
  assert.equal(q.allocate(), '10.0.0.6');
  assert.equal(q.allocate(), '10.0.0.2');
  // A cursor outside the subnet or unreadable is ignored.
  assert.equal(new AddressPool('10.0.0.0/29', '10.0.0.1', '192.168.1.1').allocate(), '10.0.0.2');
  assert.equal(new AddressPool('10.0.0.0/29', '10.0.0.1', 'bogus').allocate(), '10.0.0.2');
});

test('AddressPool: large subnets fill up and scan quickly (full words are skipped)', () => {
  const p = new AddressPool('10.0.0.0/16', '10.0.0.1');
  const t0 = performance.now();
  for (let i = 0; i < p.capacity; i++) assert.notEqual(p.allocate(), null);
  assert.equal(p.allocate(), null);
  p.release('10.0.128.77');
  assert.equal(p.allocate(), '10.0.128.77');
  assert.ok(performance.now() - t0 < 2000);
});

test('VNIs: 4096 up to 2^24-1, unique, ordinary networks start above the ingress VNI', () => {
  assert.equal(VNI_MIN, 4096);
  assert.equal(VNI_MAX, 16777215);
  assert.equal(allocateVni(new Set()), 4097);
  assert.equal(allocateVni(new Set(), 4096), 4096);
  assert.equal(allocateVni(new Set([4096, 4097, 4098])), 4099);
  assert.equal(allocateVni(new Set([4096]), 4096), 4097);
  assert.equal(allocateVni(new Set([VNI_MAX]), VNI_MAX), 4096, 'wraps around');
  assert.equal(allocateVni(new Set([VNI_MAX, 4096]), VNI_MAX), 4097);
});
