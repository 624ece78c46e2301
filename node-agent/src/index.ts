// The public entry of @mosaic/node-agent: what applications and tools use to
// talk to a Mosaic cluster. The agent's internals are not exported.
export { AgentClient, type ClusterInfo } from "./client/agent-client.ts";
export { ClusterClient } from "./client/cluster-client.ts";
export type { ClusterMap, NodeEntry, NodeState } from "./core/cluster-map.ts";
export type { FileManifest } from "./core/manifest.ts";
export type { Redundancy, VolumeSpec } from "./core/volume.ts";
export type { PieceState } from "./data/file-service.ts";
export { type ErrorCode, ErrorCodes, isMosaicError, MosaicError } from "./errors.ts";
export type { ByteRange } from "./ipc/byte-range.ts";
export { IpcClient, type IpcClientOptions, type IpcReply } from "./ipc/ipc-client.ts";
export {
  type MosaicFile,
  MosaicFiles,
  type MosaicWriteStream,
  type ReadOptions,
  type ReadStreamOptions,
  type WriteStreamOptions,
} from "./ipc/mosaic-files.ts";
