// Test fixture: an application on one node, doing continuous reads and
// writes of media files through its local agent while a test breaks the
// cluster around it. Argument: JSON WorkloadArgs. Prints JSON lines:
// "ready" once every file is written, one "op" per read or write (wall-clock
// start, duration, outcome), and on the stdin command "stop" (or EOF) it
// finishes what is in flight, reads every file back and prints "summary".
//
// Every byte is checkable: a file's content is a pure function of its name
// and generation (AES-CTR keystream, cheap at GB/s), and its first 8 bytes
// say which generation it is. A read must return a whole generation at least
// as new as the last write acknowledged before it began: anything else is a
// stale or corrupt read.
//
// With `verifyOnly`, it writes nothing: it reads the files named in `expect`
// and checks each is exactly that generation (a returning node must not serve
// what it held before it left), then prints the summary and exits.
import { createCipheriv, createHash } from "node:crypto";
import { createInterface } from "node:readline";
import { AgentClient } from "../../src/client/agent-client.ts";
import { isMosaicError } from "../../src/errors.ts";
import { trustCluster } from "../../src/tls/client-trust.ts";
import { MutualTls } from "../../src/tls/grpc-tls.ts";

export interface WorkloadArgs {
  node: string;
  /** host:port of the local agent. */
  agent: string;
  volume: string;
  files: number;
  sizeBytes: number;
  readers: number;
  writers: number;
  /** A TLS directory of a client certificate of the cluster's CA, when its agents run mutual TLS. */
  tlsDir?: string;
  /** Attempts per write (AgentClient.putRetrying: the source is replayable); a write fails only when all do. */
  writeAttempts?: number;
  verifyOnly?: boolean;
  /**
   * The local agent itself may go and come back (its node is upgraded): an
   * op that fails while it cannot be reached waits for it (up to 60 s) and
   * runs again, counted in agentWaits rather than as an error.
   */
  waitForAgent?: boolean;
  /** verifyOnly: file name → the generation it must hold. */
  expect?: Record<string, number>;
}

export interface WorkloadSummary {
  kind: "summary";
  node: string;
  reads: number;
  readErrors: number;
  /** Reads started again because the file was overwritten meanwhile (MOSAIC_ERR_FILE_CHANGED). */
  rereads: number;
  writes: number;
  /** Writes the client library sent again after a retryable error (its coordinator died, …). */
  writeRetries: number;
  writeFailures: number;
  /** Reads that returned an older generation than one already acknowledged, or bytes that match no generation. */
  stale: number;
  corrupt: number;
  /** Files read back whole at their last acknowledged generation at the end. */
  verified: number;
  bytesRead: number;
  /** At the end, pieces of the files' current versions that are not whole where placement puts them. */
  piecesNotOk: number;
  /** Ops that waited for the local agent to come back (waitForAgent), and the time spent waiting. */
  agentWaits: number;
  agentWaitMs: number;
  /** file name → last acknowledged generation. */
  acked: Record<string, number>;
  errors: string[];
}

const HEADER_BYTES = 8;
const MAGIC = 0x4d4f5341; // "MOSA"
const PIECE_BYTES = 1024 * 1024;

const args = JSON.parse(process.argv[2] ?? "{}") as WorkloadArgs;
// Its agent checks this certificate; this checks that the agent reached is its node's.
if (args.tlsDir !== undefined)
  trustCluster([{ id: args.node, addresses: [args.agent, args.agent] }], await MutualTls.open(args.tlsDir));
const client = new AgentClient(args.agent);
const print = (line: object) => process.stdout.write(`${JSON.stringify({ node: args.node, ...line })}\n`);

/** The keystream that is generation `gen` of file `name`, from byte 0. */
function keystream(name: string, gen: number) {
  const key = createHash("sha256").update(`${name}:${gen}`).digest().subarray(0, 16);
  return createCipheriv("aes-128-ctr", key, Buffer.alloc(16));
}

function header(gen: number): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h.writeUInt32BE(MAGIC, 0);
  h.writeUInt32BE(gen, 4);
  return h;
}

async function* content(name: string, gen: number, sizeBytes: number): AsyncGenerator<Buffer> {
  const cipher = keystream(name, gen);
  for (let at = 0; at < sizeBytes; at += PIECE_BYTES) {
    const part = cipher.update(Buffer.alloc(Math.min(PIECE_BYTES, sizeBytes - at)));
    if (at === 0) header(gen).copy(part, 0, 0, Math.min(HEADER_BYTES, part.length));
    yield part;
  }
}

type ReadOutcome = { gen: number; bytes: number } | { corrupt: string };

/** Reads a file whole and checks it is one whole generation. */
async function readChecked(name: string): Promise<ReadOutcome> {
  const { body } = await client.get(args.volume, name);
  let gen: number | undefined;
  let cipher: ReturnType<typeof keystream> | undefined;
  let at = 0;
  let pending = Buffer.alloc(0);
  let bad: string | undefined;
  for await (const part of body) {
    let data = part;
    if (gen === undefined) {
      pending = Buffer.concat([pending, data]);
      if (pending.length < HEADER_BYTES) continue;
      if (pending.readUInt32BE(0) !== MAGIC) bad ??= "no workload header";
      gen = pending.readUInt32BE(4);
      cipher = keystream(name, gen);
      data = pending;
    }
    const expected = (cipher as ReturnType<typeof keystream>).update(Buffer.alloc(data.length));
    if (at === 0) header(gen).copy(expected, 0, 0, Math.min(HEADER_BYTES, expected.length));
    if (bad === undefined && !expected.equals(data))
      bad = `bytes differ from generation ${gen} near offset ${at}`;
    at += data.length;
  }
  if (bad === undefined && at !== args.sizeBytes) bad = `${at} bytes, expected ${args.sizeBytes}`;
  return bad === undefined ? { gen: gen as number, bytes: at } : { corrupt: bad };
}

const names = Array.from({ length: args.files }, (_, i) => `clip-${String(i).padStart(3, "0")}.bin`);
const acked: Record<string, number> = { ...(args.expect ?? {}) };
const writing = new Set<string>();
const summary: WorkloadSummary = {
  kind: "summary",
  node: args.node,
  reads: 0,
  readErrors: 0,
  rereads: 0,
  writes: 0,
  writeRetries: 0,
  writeFailures: 0,
  stale: 0,
  corrupt: 0,
  verified: 0,
  bytesRead: 0,
  piecesNotOk: 0,
  agentWaits: 0,
  agentWaitMs: 0,
  acked,
  errors: [],
};
const noteError = (what: string) => {
  if (summary.errors.length < 20) summary.errors.push(what);
};
let nextGen = 1;
let stopping = false;

/** `op`, done again once the local agent is back if it failed because the agent was gone (waitForAgent). */
async function throughAgentRestarts<T>(op: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await op();
    } catch (error) {
      if (args.waitForAgent !== true || (await client.reachable(200))) throw error;
      const started = Date.now();
      summary.agentWaits++;
      while (!(await client.reachable(1_000))) {
        if (Date.now() - started > 60_000) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      summary.agentWaitMs += Date.now() - started;
    }
  }
}

async function write(name: string): Promise<void> {
  const gen = nextGen++;
  const started = Date.now();
  try {
    await throughAgentRestarts(() =>
      client.putRetrying(args.volume, name, () => content(name, gen, args.sizeBytes), {
        sizeBytes: args.sizeBytes,
        attempts: args.writeAttempts ?? 3,
        onRetry: (error) => {
          summary.writeRetries++;
          print({
            kind: "retry",
            op: "write",
            file: name,
            gen,
            at: Date.now(),
            code: error.code,
            message: error.message,
          });
        },
      }),
    );
    acked[name] = Math.max(acked[name] ?? 0, gen);
    summary.writes++;
    print({ kind: "op", op: "write", file: name, gen, ok: true, at: started, ms: Date.now() - started });
  } catch (error) {
    const message = (error as Error).message;
    const code = isMosaicError(error) ? error.code : undefined;
    summary.writeFailures++;
    noteError(`write ${name} g${gen}: ${message}`);
    print({
      kind: "op",
      op: "write",
      file: name,
      gen,
      ok: false,
      at: started,
      ms: Date.now() - started,
      code,
      message,
    });
  }
}

async function read(name: string, exact: boolean): Promise<void> {
  const floor = acked[name] ?? 0;
  const started = Date.now();
  try {
    const outcome = await throughAgentRestarts(() => readChecked(name));
    summary.reads++;
    const ms = Date.now() - started;
    if ("corrupt" in outcome) {
      summary.corrupt++;
      noteError(`read ${name}: ${outcome.corrupt}`);
      print({ kind: "op", op: "read", file: name, ok: false, at: started, ms, corrupt: outcome.corrupt });
      return;
    }
    summary.bytesRead += outcome.bytes;
    const stale = exact ? outcome.gen !== floor : outcome.gen < floor;
    if (stale) {
      summary.stale++;
      noteError(`read ${name}: generation ${outcome.gen}, expected ${exact ? "" : "≥ "}${floor}`);
    } else if (exact) summary.verified++;
    print({ kind: "op", op: "read", file: name, gen: outcome.gen, ok: !stale, at: started, ms, stale });
  } catch (error) {
    // Replaced while we read it: the agent says so rather than mix versions; a player reads it again.
    if (isMosaicError(error, "MOSAIC_ERR_FILE_CHANGED") && !exact) {
      summary.rereads++;
      print({
        kind: "op",
        op: "read",
        file: name,
        ok: false,
        at: started,
        ms: Date.now() - started,
        changed: true,
      });
      return read(name, exact);
    }
    summary.readErrors++;
    const message = (error as Error).message;
    noteError(`read ${name}: ${message}`);
    print({ kind: "op", op: "read", file: name, ok: false, at: started, ms: Date.now() - started, message });
  }
}

function pick(): string {
  return names[Math.floor(Math.random() * names.length)] as string;
}

async function readLoop(): Promise<void> {
  while (!stopping) await read(pick(), false);
}

async function writeLoop(): Promise<void> {
  while (!stopping) {
    const name = pick();
    // One writer per file at a time, so acknowledged generations are ordered.
    if (writing.has(name)) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      continue;
    }
    writing.add(name);
    await write(name).finally(() => writing.delete(name));
  }
}

async function finish(loops: Promise<void>[]): Promise<never> {
  stopping = true;
  await Promise.all(loops);
  for (const name of names) {
    if (acked[name] === undefined) continue;
    await read(name, true);
    try {
      const { pieces } = await client.stat(args.volume, name);
      const notOk = pieces.filter((p) => p.state !== "ok");
      summary.piecesNotOk += notOk.length;
      for (const p of notOk) noteError(`${name} stripe ${p.stripe} slot ${p.slot} on ${p.node}: ${p.state}`);
    } catch (error) {
      summary.piecesNotOk++;
      noteError(`stat ${name}: ${(error as Error).message}`);
    }
  }
  print(summary);
  client.close();
  process.exit(0);
}

if (args.verifyOnly === true) {
  await finish([]);
} else {
  for (const name of names) await write(name);
  print({ kind: "ready" });
  const loops = [
    ...Array.from({ length: args.readers }, readLoop),
    ...Array.from({ length: args.writers }, writeLoop),
  ];
  let finishing = false;
  const stop = () => {
    if (finishing) return;
    finishing = true;
    void finish(loops);
  };
  createInterface({ input: process.stdin }).on("line", (line) => {
    if (line.trim() === "stop") stop();
  });
  process.stdin.on("end", stop);
}
