// The status page of a local cluster, as `mosaic up` serves it: the agents
// polled (local-source.ts) into a feed the HTTP server streams from.
import type { LocalPlan } from "../cli/local-plan.ts";
import type { Logger } from "../log.ts";
import { LocalStatusSource } from "./local-source.ts";
import { StatusFeed } from "./status-feed.ts";
import { StatusServer } from "./status-server.ts";

/** Loopback only: the page tells anyone who reaches it where every agent listens. */
export const LOCAL_STATUS_HOST = "127.0.0.1";
export const LOCAL_STATUS_PORT_DEFAULT = 7080;

export interface LocalStatusPage {
  /** http://127.0.0.1:<port>/ */
  url: string;
  stop(): Promise<void>;
}

/** Listens at once (a taken port rejects here); the first snapshot follows within a round. */
export async function serveLocalStatus(plan: LocalPlan, port: number, log: Logger): Promise<LocalStatusPage> {
  const feed = new StatusFeed();
  const server = await StatusServer.start({ host: LOCAL_STATUS_HOST, port, feed, log });
  const source = new LocalStatusSource({
    cluster: plan.cluster,
    gateways: plan.cluster.nodes.map((n) => plan.agents.find((a) => a.id === n.id)?.http),
    capacityBytes: plan.capacityBytes,
    feed,
    log,
  });
  void source.start();
  return {
    url: `http://${server.address}/`,
    stop: async () => {
      await source.stop();
      await server.close();
    },
  };
}
