// A client process for the request-FIFO tests: writes `count` REQUEST packets
// of varying size (up to the full 4096 bytes) as fast as the pipe takes them,
// then reports { ok: true, sent, eagainPauses }.
//   fifo-sender.ts <fifo> <sender index> <count>
import { encodePacket, PACKET_MAX_BODY_BYTES, PacketType } from "../../src/ipc/packet.ts";
import { openFifoWriter, writePacket } from "../../src/ipc/request-fifo.ts";

const [fifo = "", senderArg = "0", countArg = "0"] = process.argv.slice(2);
const sender = Number(senderArg);
const count = Number(countArg);

function report(message: Record<string, unknown>): Promise<void> {
  return new Promise((resolve) => process.send?.(message, () => resolve()) ?? resolve());
}

/** Body for packet n: its own letter repeated to a size that cycles up to the maximum. */
export function senderBody(senderIndex: number, n: number): { s: number; n: number; pad: string } {
  const overhead = JSON.stringify({ s: senderIndex, n, pad: "" }).length;
  const padBytes =
    n % 4 === 0 ? PACKET_MAX_BODY_BYTES - overhead : (n * 997) % (PACKET_MAX_BODY_BYTES - overhead);
  return { s: senderIndex, n, pad: String.fromCharCode(97 + (senderIndex % 26)).repeat(padBytes) };
}

if (fifo) {
  try {
    const fd = openFifoWriter(fifo);
    const startMs = performance.now();
    for (let n = 0; n < count; n++) {
      const packet = encodePacket({
        type: PacketType.REQUEST,
        clientId: sender + 1,
        requestId: n,
        body: senderBody(sender, n),
      });
      await writePacket(fd, packet, 20_000);
    }
    await report({ ok: true, sent: count, elapsedMs: performance.now() - startMs });
  } catch (error) {
    const e = error as { message?: string; code?: string };
    await report({ ok: false, error: e.message ?? String(error), code: e.code });
    process.exitCode = 1;
  }
}
