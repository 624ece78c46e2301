// What the RPC layer needs from the file layer. The Files service (clients)
// and the Peer service's Forward (other agents) both hand requests here, so a
// forwarded request is served exactly like a local one.
import type { FileManifest } from "../core/manifest.ts";
import type { FileRequest } from "./messages.ts";

export interface FileReply {
  /** JSON-able reply header. */
  header: unknown;
  /** Data that follows the header (a file's bytes for "get"). */
  body?: AsyncIterable<Buffer>;
}

export interface FileHandler {
  handle(
    request: FileRequest,
    input: AsyncIterable<Buffer>,
    origin: { forwarded: boolean },
  ): Promise<FileReply>;
  /** Newest manifest of a file that this agent itself holds. */
  localManifest(volume: string, fileId: string): Promise<FileManifest | undefined>;
  /** Newest manifest of every file of a volume that this agent holds. */
  localManifests(volume: string): Promise<FileManifest[]>;
}
