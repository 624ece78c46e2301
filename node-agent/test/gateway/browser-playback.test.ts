// A real browser plays a video from the gateway: headless Chromium (Debian's,
// driven by playwright-core) loads a page with a <video> whose src is a
// gateway URL, and the test checks that playback advances, that a seek far
// ahead lands and plays on from there, and that the gateway served it with
// Range requests (its log shows them). The video is made here and now: the
// same Chromium encodes a canvas animation to VP8 with WebCodecs and
// webm.ts muxes it, padded so the file is large enough (about 1 MiB per
// second) that a player must ask for far bytes when it seeks.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { type Browser, chromium, type Page } from "playwright-core";
import { ask, type GatewayCluster, startGatewayCluster } from "./gateway-cluster.ts";
import { type EncodedFrame, muxWebm } from "./webm.ts";

// The page's globals as far as the callbacks below use them (the project compiles without the DOM library).
interface VideoLike {
  currentTime: number;
  duration: number;
  paused: boolean;
  error: { message: string } | null;
  play(): Promise<void>;
  addEventListener(event: string, listener: () => void, options?: { once: boolean }): void;
}
interface EncodedChunkLike {
  byteLength: number;
  timestamp: number;
  type: "key" | "delta";
  copyTo(into: Uint8Array): void;
}
interface Canvas2D {
  fillStyle: string;
  font: string;
  fillRect(x: number, y: number, w: number, h: number): void;
  fillText(text: string, x: number, y: number): void;
}
declare const document: { getElementById(id: string): unknown };
declare const OffscreenCanvas: new (width: number, height: number) => { getContext(kind: "2d"): Canvas2D };
declare const VideoFrame: new (
  source: unknown,
  init: { timestamp: number; duration: number },
) => { close(): void };
declare const VideoEncoder: new (init: {
  output: (chunk: EncodedChunkLike) => void;
  error: (e: Error) => void;
}) => {
  encodeQueueSize: number;
  configure(config: {
    codec: string;
    width: number;
    height: number;
    bitrate: number;
    framerate: number;
  }): void;
  encode(frame: unknown, options: { keyFrame: boolean }): void;
  flush(): Promise<void>;
  close(): void;
};

const CHROMIUM = "/usr/bin/chromium";
const SECONDS = 40;
const FPS = 20;
const WIDTH = 320;
const HEIGHT = 240;
const PAD_PER_SECOND = 1024 * 1024;
const VIDEO = "/v1/media/test/film.webm";

const skip = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to run the browser test`;

describe("a <video> in headless Chromium plays from the gateway", { skip, timeout: 240_000 }, () => {
  let g: GatewayCluster;
  let browser: Browser;
  let page: Page;
  let videoBytes = 0;

  before(async () => {
    g = await startGatewayCluster(3);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--autoplay-policy=no-user-gesture-required"],
    });
    page = await browser.newPage();
    // Pages come from the gateway too: the player is same-origin with its video, and WebCodecs wants 127.0.0.1's secure context.
    await putText(g, "/v1/media/test/blank.html", "<!doctype html><title>encoder</title>");
    await putText(
      g,
      "/v1/media/test/player.html",
      `<!doctype html><title>player</title><video id="v" src="${VIDEO}" muted playsinline preload="auto"></video>`,
    );
    await page.goto(`${g.url()}/v1/media/test/blank.html`);
    const frames = await encodeInBrowser(page);
    const webm = muxWebm(frames, {
      width: WIDTH,
      height: HEIGHT,
      durationMs: SECONDS * 1000,
      padClusterBytes: PAD_PER_SECOND,
    });
    videoBytes = webm.length;
    const put = await ask(g.url(1), VIDEO, { method: "PUT", body: webm });
    assert.equal(put.status, 201, put.body.toString());
  });
  after(async () => {
    await browser?.close();
    await g?.stop();
  });

  test("playback advances, and a seek far ahead plays on from there through Range requests", async () => {
    await page.goto(`${g.url(2)}/v1/media/test/player.html`);
    const start = await page.evaluate(async () => {
      const v = document.getElementById("v") as VideoLike;
      await v.play();
      return { duration: v.duration };
    });
    assert.ok(Math.abs(start.duration - SECONDS) < 0.5, `duration ${start.duration}`);
    await page.waitForFunction(() => (document.getElementById("v") as VideoLike).currentTime > 1.0, null, {
      timeout: 30_000,
    });
    const logBeforeSeek = g.log.length;

    const target = 32;
    await page.evaluate(async (to) => {
      const v = document.getElementById("v") as VideoLike;
      const seeked = new Promise<void>((resolve) =>
        v.addEventListener("seeked", () => resolve(), { once: true }),
      );
      v.currentTime = to;
      await seeked;
    }, target);
    const landed = await page.evaluate(() => (document.getElementById("v") as VideoLike).currentTime);
    assert.ok(landed >= target - 0.1 && landed < target + 1, `seek landed at ${landed}`);
    await page.waitForFunction(
      (to) => {
        const v = document.getElementById("v") as VideoLike;
        return v.currentTime > to + 1.0 && !v.paused;
      },
      target,
      { timeout: 30_000 },
    );
    const state = await page.evaluate(() => {
      const v = document.getElementById("v") as VideoLike;
      return { error: v.error?.message ?? null, paused: v.paused, time: v.currentTime };
    });
    assert.equal(state.error, null);

    // 304: the browser revalidating what its cache holds (If-None-Match with a Range), which the gateway honours.
    const served = g.log.filter((l) => l.url === VIDEO && l.method === "GET");
    assert.ok(
      served.every((l) => l.status === 200 || l.status === 206 || l.status === 304),
      JSON.stringify(served.map((l) => [l.status, l.range])),
    );
    const ranged = served.filter((l) => l.status === 206 && typeof l.range === "string");
    assert.ok(ranged.length > 0, "the player used Range requests");
    // After the seek, bytes past the half of the file were asked for by a Range request of their own.
    const afterSeek = g.log.slice(logBeforeSeek).filter((l) => l.url === VIDEO && l.status === 206);
    const starts = afterSeek.map((l) => Number(/bytes=(\d+)-/.exec(String(l.range))?.[1] ?? -1));
    assert.ok(
      starts.some((s) => s > videoBytes / 2),
      `a Range request after the seek starts past the middle of ${videoBytes} bytes: ${JSON.stringify(afterSeek.map((l) => l.range))}`,
    );
  });
});

async function putText(g: GatewayCluster, target: string, text: string): Promise<void> {
  const reply = await ask(g.url(), target, { method: "PUT", body: Buffer.from(text) });
  assert.ok(reply.status === 201 || reply.status === 204, reply.body.toString());
}

/** A moving, numbered test card, encoded to VP8 in the page with WebCodecs; a keyframe every second. */
async function encodeInBrowser(page: Page): Promise<EncodedFrame[]> {
  const encoded = await page.evaluate(
    async ({ width, height, fps, seconds }) => {
      const canvas = new OffscreenCanvas(width, height);
      const ctx = canvas.getContext("2d");
      const out: { b64: string; timestampMs: number; key: boolean }[] = [];
      let failure: unknown;
      const encoder = new VideoEncoder({
        output: (chunk: EncodedChunkLike) => {
          const bytes = new Uint8Array(chunk.byteLength);
          chunk.copyTo(bytes);
          let binary = "";
          for (let i = 0; i < bytes.length; i += 0x8000)
            binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
          out.push({
            b64: btoa(binary),
            timestampMs: Math.round(chunk.timestamp / 1000),
            key: chunk.type === "key",
          });
        },
        error: (e: Error) => {
          failure = e;
        },
      });
      encoder.configure({ codec: "vp8", width, height, bitrate: 400_000, framerate: fps });
      for (let i = 0; i < fps * seconds; i++) {
        ctx.fillStyle = `hsl(${(i * 7) % 360} 60% 40%)`;
        ctx.fillRect(0, 0, width, height);
        ctx.fillStyle = "white";
        ctx.fillRect((i * 5) % width, height / 3, 40, 40);
        ctx.font = "32px sans-serif";
        ctx.fillText(`${(i / fps).toFixed(2)} s`, 10, height - 20);
        const frame = new VideoFrame(canvas, { timestamp: (i * 1_000_000) / fps, duration: 1_000_000 / fps });
        encoder.encode(frame, { keyFrame: i % fps === 0 });
        frame.close();
        while (encoder.encodeQueueSize > 8) await new Promise((r) => setTimeout(r, 1));
      }
      await encoder.flush();
      encoder.close();
      if (failure !== undefined) throw failure;
      return out;
    },
    { width: WIDTH, height: HEIGHT, fps: FPS, seconds: SECONDS },
  );
  assert.equal(encoded.length, FPS * SECONDS);
  return encoded.map((f) => ({ data: Buffer.from(f.b64, "base64"), timestampMs: f.timestampMs, key: f.key }));
}
