// The node options every Shoal daemon runs with, however it is started: bin/shoal's `#!` line carries
// them (systemd's ExecStart and `shoal daemon` go through bin/shoal), and the labs pass them to the
// daemons they start (lab/cluster-lab.ts). V8 reads most of them only while it starts: set later from
// inside (v8.setFlagsFromString) they change nothing, so the daemon cannot set them for itself (the
// interrupt budget is the exception: managerTiering below).
// test/cli/build.test.ts checks that bin/shoal's `#!` line holds every one of them.
import { setFlagsFromString } from 'node:v8';

// --no-concurrent-recompilation: TurboFan compiles hot functions on the main thread instead of handing
//   them to V8's helper threads. Those threads' compiler zones come from their own malloc arenas, which
//   glibc keeps after the compile; on the main thread the same memory is reused. Measured in labs of
//   1 manager + 4 workers, three alternating pairs: workers 61–64 MB instead of 63–67 MB, the manager
//   70 MB instead of 73–75 MB; no CPU cost seen (an image load of 3,000 files, `shoal --help` x 20).
//   A compile now pauses the event loop for its duration (milliseconds), which no daemon timer notices.
// --interrupt-budget=540672 (8 x V8's 67584): a function must run eight times as much bytecode before
//   TurboFan considers it. An idle worker then optimizes nothing (--trace-opt: 0 compiles in 4 min,
//   against 6 at start and 2 more in the first 30 s idle), so the optimizing compiler's own code in the
//   node binary is never paged in and no compiler zone fragments malloc's arena: a worker's file-backed
//   RSS 45.6-45.8 -> 41.9 MB. Hot code still gets optimized, a little later: a 3,000-file image load
//   used about the same CPU, and 200 MB over https exactly the same (docs/design/build.md, "Memory").
// --max-semi-space-size=64 (MB; V8's default grows to 16): a leader writing 150,000 tasks allocates
//   faster than a 16 MB young generation can hold what is still live, so short-lived objects (each
//   write's JSON and parse, each message) were promoted and marked with the 1.4 GB old generation.
//   In process (BENCH_ORCH_TASKS=150000 BENCH_ORCH_NODES=5000 npm run bench:orchestrator, four runs
//   each, interleaved): the create 15.71-18.64 s wall and 18.2-21.7 s CPU without it, 14.58-15.61 s and
//   16.7-18.0 s with it. The young generation only grows under allocation: an idle daemon is unchanged
//   (bench:cli). At 32 MB bench:converge's 10,000 tasks showed nothing (below).
// Measured and not taken (docs/design/build.md, "Memory"): --no-opt (-4 to -5 MB, but an image load
// takes 30–80 % more CPU), --max-semi-space-size=1 and --optimize-for-size (no difference at idle),
// --max-lazy, --no-sparkplug, MALLOC_ARENA_MAX=2 (none), a fixed MALLOC_MMAP_THRESHOLD_ (-2 MB, but
// https transfers take 40–110 % more CPU), --max-semi-space-size=32 (fewer scavenges for the leader:
// bench:converge's rolling update 15.25 / 16.34 s with it against 14.55–16.63 s without, leader CPU
// 12.6 / 13.7 s against 12.1–14.1 s, on a quiet machine; bench:orchestrator within its noise too).
export const DAEMON_NODE_FLAGS: readonly string[] = ['--no-concurrent-recompilation', '--interrupt-budget=540672', '--max-semi-space-size=64'];

/**
 * A manager wants hot code optimized soon: with the budget above, bench:scheduler's placements/s fell
 * by 20–30 % (its bursts end before TurboFan takes over). Unlike the compiler-thread flag, V8 reads this
 * one at every budget reset, so a daemon taking the manager role puts V8's default back at run time
 * (checked: the scheduler bench started with the large budget and reset at once runs at the default's
 * speed). A worker keeps the large one.
 */
export function managerTiering(): void {
  setFlagsFromString('--interrupt-budget=67584');
}
