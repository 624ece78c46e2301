// A minimal WebM (Matroska) writer for the browser test's video: one VP8
// track, one cluster per keyframe, Cues before the clusters so a player can
// seek at once, and optional Void padding in each cluster to make the file
// as large as a real film's stretch of the same length (a player then has
// to ask for far bytes with a Range request when it seeks, instead of having
// fetched the whole file already). Pure: frames in, bytes out. Element ids
// and layout follow the Matroska spec (RFC 9559).
export interface EncodedFrame {
  data: Buffer;
  timestampMs: number;
  key: boolean;
}

export interface WebmOptions {
  width: number;
  height: number;
  durationMs: number;
  /** Bytes of Void added to each cluster (default none). */
  padClusterBytes?: number;
}

const ID = {
  EBML: 0x1a45dfa3,
  EBMLVersion: 0x4286,
  EBMLReadVersion: 0x42f7,
  EBMLMaxIDLength: 0x42f2,
  EBMLMaxSizeLength: 0x42f3,
  DocType: 0x4282,
  DocTypeVersion: 0x4287,
  DocTypeReadVersion: 0x4285,
  Segment: 0x18538067,
  Info: 0x1549a966,
  TimecodeScale: 0x2ad7b1,
  Duration: 0x4489,
  MuxingApp: 0x4d80,
  WritingApp: 0x5741,
  Tracks: 0x1654ae6b,
  TrackEntry: 0xae,
  TrackNumber: 0xd7,
  TrackUID: 0x73c5,
  TrackType: 0x83,
  FlagLacing: 0x9c,
  CodecID: 0x86,
  Video: 0xe0,
  PixelWidth: 0xb0,
  PixelHeight: 0xba,
  Cues: 0x1c53bb6b,
  CuePoint: 0xbb,
  CueTime: 0xb3,
  CueTrackPositions: 0xb7,
  CueTrack: 0xf7,
  CueClusterPosition: 0xf1,
  Cluster: 0x1f43b675,
  Timecode: 0xe7,
  SimpleBlock: 0xa3,
  Void: 0xec,
} as const;

export function muxWebm(frames: EncodedFrame[], options: WebmOptions): Buffer {
  const header = element(ID.EBML, [
    uint(ID.EBMLVersion, 1),
    uint(ID.EBMLReadVersion, 1),
    uint(ID.EBMLMaxIDLength, 4),
    uint(ID.EBMLMaxSizeLength, 8),
    text(ID.DocType, "webm"),
    uint(ID.DocTypeVersion, 2),
    uint(ID.DocTypeReadVersion, 2),
  ]);
  const info = element(ID.Info, [
    uint(ID.TimecodeScale, 1_000_000), // timestamps in milliseconds
    float(ID.Duration, options.durationMs),
    text(ID.MuxingApp, "mosaic-test"),
    text(ID.WritingApp, "mosaic-test"),
  ]);
  const tracks = element(ID.Tracks, [
    element(ID.TrackEntry, [
      uint(ID.TrackNumber, 1),
      uint(ID.TrackUID, 1),
      uint(ID.TrackType, 1),
      uint(ID.FlagLacing, 0),
      text(ID.CodecID, "V_VP8"),
      element(ID.Video, [uint(ID.PixelWidth, options.width), uint(ID.PixelHeight, options.height)]),
    ]),
  ]);
  const clusters = clustersOf(frames, options.padClusterBytes ?? 0);
  // Cluster positions are written as 8-byte integers, so the Cues' size does not depend on them.
  const cuesFor = (positions: number[]) =>
    element(
      ID.Cues,
      clusters.map((c, i) =>
        element(ID.CuePoint, [
          uint(ID.CueTime, c.timestampMs),
          element(ID.CueTrackPositions, [
            uint(ID.CueTrack, 1),
            uint(ID.CueClusterPosition, positions[i] as number, 8),
          ]),
        ]),
      ),
    );
  const before = info.length + tracks.length + cuesFor(clusters.map(() => 0)).length;
  const positions: number[] = [];
  let at = before;
  for (const c of clusters) {
    positions.push(at);
    at += c.bytes.length;
  }
  const segment = element(ID.Segment, [info, tracks, cuesFor(positions), ...clusters.map((c) => c.bytes)]);
  return Buffer.concat([header, segment]);
}

function clustersOf(frames: EncodedFrame[], padBytes: number): { timestampMs: number; bytes: Buffer }[] {
  const groups: EncodedFrame[][] = [];
  for (const frame of frames) {
    if (frame.key || groups.length === 0) groups.push([]);
    (groups.at(-1) as EncodedFrame[]).push(frame);
  }
  return groups.map((group) => {
    const base = (group[0] as EncodedFrame).timestampMs;
    const blocks = group.map((f) => {
      const relative = f.timestampMs - base;
      if (relative > 32_767) throw new Error("a cluster spans more than 32.7 s: add keyframes");
      const head = Buffer.alloc(4);
      head[0] = 0x81; // track 1, as a 1-byte vint
      head.writeInt16BE(relative, 1);
      head[3] = f.key ? 0x80 : 0x00;
      return element(ID.SimpleBlock, [head, f.data]);
    });
    const pad = padBytes > 0 ? [element(ID.Void, [Buffer.alloc(padBytes)])] : [];
    return { timestampMs: base, bytes: element(ID.Cluster, [uint(ID.Timecode, base), ...blocks, ...pad]) };
  });
}

function element(id: number, children: Buffer[]): Buffer {
  const body = Buffer.concat(children);
  return Buffer.concat([idBytes(id), sizeVint(body.length), body]);
}

function uint(id: number, value: number, width?: number): Buffer {
  let n = width ?? 1;
  while (width === undefined && n < 8 && value >= 2 ** (8 * n)) n++;
  const bytes = Buffer.alloc(n);
  let v = value;
  for (let i = n - 1; i >= 0; i--) {
    bytes[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return element(id, [bytes]);
}

function float(id: number, value: number): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeDoubleBE(value);
  return element(id, [bytes]);
}

function text(id: number, value: string): Buffer {
  return element(id, [Buffer.from(value, "ascii")]);
}

function idBytes(id: number): Buffer {
  const n = id >= 0x1000000 ? 4 : id >= 0x10000 ? 3 : id >= 0x100 ? 2 : 1;
  const bytes = Buffer.alloc(n);
  bytes.writeUIntBE(id, 0, n);
  return bytes;
}

/** An EBML data size: always 8 bytes (0x01 marker), which every reader accepts and keeps sizes position-independent. */
function sizeVint(size: number): Buffer {
  const bytes = Buffer.alloc(8);
  bytes[0] = 0x01;
  let v = size;
  for (let i = 7; i >= 1; i--) {
    bytes[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return bytes;
}
