// What a local agent's Prometheus text (GET /metrics on its gateway, see
// metrics/agent-metrics.ts) tells the status page: its load level, and how
// its heartbeats hear each watched peer's channels and which one the peer's
// traffic takes. Pure: text in, readings out. Only the three gauges the page
// needs are read; anything else, or a line that does not parse, is skipped.
import type { LoadWord } from "./view-model.ts";

export type HeardState = "up" | "suspect" | "returning" | "down";

export interface HeardPeer {
  peer: string;
  channels: { A?: HeardState; B?: HeardState };
  active: "A" | "B" | null;
}

export interface AgentReadings {
  load: LoadWord | null;
  peers: HeardPeer[];
}

const LOAD_OF_VALUE: Record<string, LoadWord> = { "0": "Low", "1": "Medium", "2": "High" };
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
const STATES = new Set<string>(["up", "suspect", "returning", "down"]);

export function agentReadings(text: string): AgentReadings {
  let load: LoadWord | null = null;
  const peers = new Map<string, HeardPeer>();
  const peer = (name: string) => {
    let p = peers.get(name);
    if (p === undefined) {
      p = { peer: name, channels: {}, active: null };
      peers.set(name, p);
    }
    return p;
  };
  for (const line of text.split("\n")) {
    const sample = SAMPLE.exec(line);
    if (sample === null) continue;
    const [, name, labelText = "", value] = sample;
    const labels: Record<string, string | undefined> = Object.fromEntries(
      [...labelText.matchAll(LABEL)].map((m) => [m[1], (m[2] as string).replace(/\\(.)/g, "$1")]),
    );
    const channel: "A" | "B" | undefined =
      labels.channel === "A" || labels.channel === "B" ? labels.channel : undefined;
    if (name === "mosaic_load_level") load = LOAD_OF_VALUE[value as string] ?? load;
    else if (name === "mosaic_peer_channel_state" && labels.peer && channel && value === "1") {
      if (STATES.has(labels.state as string))
        peer(labels.peer).channels[channel] = labels.state as HeardState;
    } else if (name === "mosaic_peer_active_channel" && labels.peer && channel) {
      const p = peer(labels.peer);
      if (value === "1") p.active = channel;
    }
  }
  return { load, peers: [...peers.values()] };
}
