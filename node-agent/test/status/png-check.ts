// What a test can tell of a PNG without an image library: its signature, its
// IHDR (size, depth, colour type), and, once its IDAT stream is inflated
// (node:zlib), whether its pixels vary: a blank page's scanlines are nearly
// all one byte. Pure.
import { inflateSync } from "node:zlib";

export interface PngFacts {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
  /** Inflated image data: height scanlines of one filter byte then the pixels. */
  rawBytes: number;
  /** Distinct byte values in the inflated data: a handful for a blank image, many for text and colour. */
  distinctBytes: number;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export function pngFacts(png: Buffer): PngFacts {
  if (png.length < 33 || !png.subarray(0, 8).equals(SIGNATURE)) throw new Error("not a PNG: bad signature");
  let offset = 8;
  let ihdr: Buffer | undefined;
  const idat: Buffer[] = [];
  while (offset + 8 <= png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.toString("latin1", offset + 4, offset + 8);
    const data = png.subarray(offset + 8, offset + 8 + length);
    if (type === "IHDR") ihdr = data;
    else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") break;
    offset += 12 + length;
  }
  if (ihdr === undefined || ihdr.length < 13) throw new Error("not a PNG: no IHDR");
  const raw = inflateSync(Buffer.concat(idat));
  const seen = new Set<number>();
  for (const byte of raw) seen.add(byte);
  return {
    width: ihdr.readUInt32BE(0),
    height: ihdr.readUInt32BE(4),
    bitDepth: ihdr[8] as number,
    colorType: ihdr[9] as number,
    rawBytes: raw.length,
    distinctBytes: seen.size,
  };
}

/** Bytes per pixel of an 8-bit PNG of this colour type (2: RGB, 6: RGBA). */
export function bytesPerPixel(colorType: number): number {
  return colorType === 6 ? 4 : colorType === 2 ? 3 : colorType === 4 ? 2 : 1;
}
