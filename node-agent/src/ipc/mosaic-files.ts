// What applications on a node use: files of the cluster read and written
// through the local agent's FIFO and shared memory (seed 000), as Node
// streams and async iterators, on top of IpcClient.
//
//   const files = await MosaicFiles.connect({ dir: "/run/mosaic" });
//   await pipeline(files.createReadStream("media", "a.mp4", { start: 0, end: 1023 }), out);
//   await pipeline(createReadStream("b.mp4"), files.createWriteStream("media", "b.mp4"));
//   for await (const view of files.read("media", "a.mp4")) use(view); // zero-copy
//
// Ranges follow fs.createReadStream: `start` and `end` are byte offsets and
// `end` is inclusive; an end past the file is its end. The agent reads only
// the stripes (and pieces) that hold them.
//
// One transfer at a time per connection, as on IpcClient: calls queue. An
// application that wants parallel transfers connects several times.
import type { Readable, Writable } from "node:stream";
import type { FileManifest } from "../core/manifest.ts";
import type { PieceState } from "../data/file-service.ts";
import { MosaicError } from "../errors.ts";
import type { ByteRange } from "./byte-range.ts";
import { IpcClient, type IpcClientOptions } from "./ipc-client.ts";
import { readableOf, writableInto } from "./streams.ts";

export interface ReadOptions {
  /** First byte (default 0). */
  start?: number;
  /** Last byte, inclusive (default the file's last). */
  end?: number;
}

export interface ReadStreamOptions extends ReadOptions {
  /** The Readable's buffer; a slot (up to 1 MiB) is pushed at a time. */
  highWaterMark?: number;
}

export interface WriteStreamOptions {
  /** The file's size if known: the agent refuses a stream that ends short or runs over. */
  sizeBytes?: number;
  highWaterMark?: number;
}

/** A Writable into a file; `manifest` resolves once the agent has stored it whole. */
export type MosaicWriteStream = Writable & { manifest: Promise<FileManifest> };

/** An open file: its manifest as of `open`, and reads of it. */
export interface MosaicFile {
  readonly volume: string;
  readonly name: string;
  readonly manifest: FileManifest;
  read(options?: ReadOptions): AsyncIterable<Buffer>;
  createReadStream(options?: ReadStreamOptions): Readable;
}

export class MosaicFiles {
  readonly client: IpcClient;

  constructor(client: IpcClient) {
    this.client = client;
  }

  /** Registers with the local agent serving `dir` (its IPC directory). */
  static async connect(options: IpcClientOptions): Promise<MosaicFiles> {
    return new MosaicFiles(await IpcClient.connect(options));
  }

  /** The file as it is now (NO_SUCH_FILE if there is none), to read from. */
  async open(volume: string, name: string): Promise<MosaicFile> {
    const manifest = await this.client.head(volume, name);
    return {
      volume,
      name,
      manifest,
      read: (options) => this.read(volume, name, options),
      createReadStream: (options) => this.createReadStream(volume, name, options),
    };
  }

  /**
   * The file's bytes (or a range of them) as zero-copy views on the ring,
   * each valid until the next iteration. Breaking out early is allowed.
   */
  async *read(volume: string, name: string, options: ReadOptions = {}): AsyncGenerator<Buffer> {
    const reply = await this.client.get(volume, name, toRange(options));
    yield* reply.body;
  }

  /** A Readable of the file's bytes (or a range): backpressure reaches the agent, errors are MosaicErrors. */
  createReadStream(volume: string, name: string, options: ReadStreamOptions = {}): Readable {
    const range = toRange(options); // bad options throw here, not later as a stream error
    return readableOf(
      async () => (await this.client.get(volume, name, range)).body,
      options.highWaterMark ?? 1024 * 1024,
    );
  }

  /** A Writable that stores what is written as the file's new version when it ends. */
  createWriteStream(volume: string, name: string, options: WriteStreamOptions = {}): MosaicWriteStream {
    const { stream, done } = writableInto(
      (data) => this.client.put(volume, name, data, options.sizeBytes),
      options.highWaterMark ?? 1024 * 1024,
    );
    done.catch(() => {}); // reported as the stream's error; `manifest` rejects for whoever awaits it
    return Object.assign(stream, { manifest: done });
  }

  /** Stores `data` (bytes, or an async iterable such as a Readable) as the file's new version. */
  write(
    volume: string,
    name: string,
    data: Uint8Array | AsyncIterable<Uint8Array>,
    sizeBytes?: number,
  ): Promise<FileManifest> {
    if (data instanceof Uint8Array) {
      return this.client.put(
        volume,
        name,
        (async function* () {
          yield data;
        })(),
        data.length,
      );
    }
    return this.client.put(volume, name, data, sizeBytes);
  }

  stat(volume: string, name: string): Promise<{ manifest: FileManifest; pieces: PieceState[] }> {
    return this.client.stat(volume, name);
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

/** fs-style { start, end inclusive } as the wire's [start, end); undefined for the whole file. */
function toRange(options: ReadOptions): ByteRange | undefined {
  const { start, end } = options;
  if (start === undefined && end === undefined) return undefined;
  const from = start ?? 0;
  if (
    !Number.isSafeInteger(from) ||
    from < 0 ||
    (end !== undefined && (!Number.isSafeInteger(end) || end < from - 1))
  ) {
    throw new MosaicError(
      "MOSAIC_ERR_BAD_REQUEST",
      `read range must have integers 0 ≤ start ≤ end + 1, got start ${start}, end ${end}`,
    );
  }
  return { start: from, end: end === undefined ? Number.MAX_SAFE_INTEGER : end + 1 };
}
