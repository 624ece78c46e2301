// V8 flags for every Node process that moves file data (agents, the CLI, the
// benchmarks). Data arrives in ~1 MiB Buffers outside V8's heap; by default
// V8 answers each 64 MiB of such memory with a full mark-compact of a heap
// that is almost empty — ~20 per second at a few hundred MB/s, a quarter of
// the CPU. Counting that memory in the global limit, from a larger starting
// heap, leaves GC to real need. Measured on this 2-core machine, one agent
// process serving 8 GetPiece streams of 1 MiB pieces: 326 MB/s by default,
// 527 MB/s with the first flag, 788 MB/s with both. A 512 MiB starting heap
// was no faster and let an agent reach 1 GiB of RSS while striping a 1 GiB
// file; with 128 MiB it peaks near 360 MiB.
// Node refuses these in NODE_OPTIONS, so they go on the command line:
// package.json scripts, the `mosaic` shebang and every spawned agent.
export const NODE_FLAGS: readonly string[] = [
  "--external-memory-accounted-in-global-limit",
  "--initial-heap-size=128",
];
