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

/**
 * Where a request came from. `forwarded`: another agent forwarded it to
 * this one, its owner. `clientGone`: aborts when the client that sent it is
 * gone (its call cancelled, its IPC session dropped, its HTTP connection
 * closed before the reply), so a forward is not resumed for nobody.
 */
export interface RequestOrigin {
  forwarded: boolean;
  clientGone?: AbortSignal;
}

export interface FileHandler {
  handle(request: FileRequest, input: AsyncIterable<Buffer>, origin: RequestOrigin): Promise<FileReply>;
  /** Newest manifest of a file that this agent itself holds. */
  localManifest(volume: string, fileId: string): Promise<FileManifest | undefined>;
  /** Newest manifest of every file of a volume that this agent holds. */
  localManifests(volume: string): Promise<FileManifest[]>;
}
