// Shared by the status tests: a reader of the server's event stream, and a
// one-node snapshot to publish by hand.
import type { StatusSnapshot } from "../../src/status/view-model.ts";

/** Reads `event: snapshot` messages off an event stream as they come. */
export async function* snapshots(body: ReadableStream<Uint8Array>): AsyncGenerator<StatusSnapshot> {
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of body) {
    text += decoder.decode(chunk, { stream: true });
    for (let end = text.indexOf("\n\n"); end >= 0; end = text.indexOf("\n\n")) {
      const message = text.slice(0, end);
      text = text.slice(end + 2);
      const data = message.split("\n").find((l) => l.startsWith("data: "));
      if (message.includes("event: snapshot") && data) yield JSON.parse(data.slice(6)) as StatusSnapshot;
    }
  }
}

/** One node named `name`, both channels at `address` in `phase`'s state; no volumes. */
export function oneNodeSnapshot(
  name: string,
  phase: "Up" | "Down",
  takenAt: string,
  address = name,
): StatusSnapshot {
  const channel = { address, state: phase };
  return {
    source: "local",
    takenAt,
    epoch: 1,
    nodes: [
      {
        name,
        phase,
        channels: { A: channel, B: channel },
        active: phase === "Up" ? "A" : "none",
        load: null,
        used: null,
        capacity: null,
        epoch: 1,
        rebuild: null,
        message: null,
      },
    ],
    volumes: [],
  };
}
