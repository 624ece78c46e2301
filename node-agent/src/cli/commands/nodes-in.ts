// `mosaic nodes in <node>`: an operator takes a node that is out back into
// the cluster. Agents mark nodes down and out among themselves but never
// bring an out node back (its pieces were rebuilt elsewhere; only a person
// knows it is fit to hold data again): that takes an operator's map at an
// epoch newer than any agent holds, written to the cluster file, which the
// agents read again on SIGHUP. Locally `mosaic up`'s agents are signalled
// here; elsewhere whoever runs the agents is told to.
import { type ClusterFile, readClusterFile, writeClusterFile } from "../../config.ts";
import { type ClusterMap, withNodeState } from "../../core/cluster-map.ts";
import { MosaicError } from "../../errors.ts";
import { reloadLocalAgents } from "../local-reload.ts";
import { type ClusterStatus, clusterStatus } from "../node-status.ts";
import { UsageError } from "../parse.ts";
import { printLine } from "../session.ts";
import { askEveryAddress } from "./cluster.ts";

/** How long the agents may take to read the file and hold the new map. */
const ADOPT_WAIT_MS = 10_000;
/** The agents may agree on a map of their own at the epoch we wrote: then we write on top of theirs. */
const ATTEMPTS = 3;

export async function nodesIn(nodeId: string, options: { cluster: string }): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const file = await readClusterFile(options.cluster);
    if (!file.nodes.some((n) => n.id === nodeId)) {
      throw new UsageError(
        `no node ${JSON.stringify(nodeId)} in the cluster (nodes: ${file.nodes.map((n) => n.id).join(", ")})`,
      );
    }
    const status = clusterStatus(file, await askEveryAddress(file));
    const node = status.nodes.find((n) => n.id === nodeId);
    if (node === undefined || !status.nodes.some((n) => n.epoch !== undefined)) {
      throw new MosaicError(
        "MOSAIC_ERR_NO_CLUSTER",
        `no Mosaic agent answers — is the cluster running? (cluster file: ${options.cluster})`,
      );
    }
    if (node.state !== "out") {
      const how = node.state === "up" ? "up" : "down; the agents mark it up as soon as they hear it again";
      printLine(`${nodeId} is in: ${how} (map epoch ${status.map.epoch})`);
      return;
    }
    if (node.epoch === undefined) {
      throw new MosaicError(
        "MOSAIC_ERR_PEER_UNAVAILABLE",
        `${nodeId} does not answer at ${node.channels.map((c) => c.address).join(" or ")}: start its agent ` +
          "first (taken in while it is not running, it would be marked down and, after the out grace, out again)",
      );
    }
    const next = withNodeState(status.map, nodeId, "up");
    // Everything but the map stays as it was: the volumes, and the local CA the agents and tools use.
    await writeClusterFile(options.cluster, { ...file, ...next });
    const signalled = await reloadLocalAgents(options.cluster);
    if (signalled.length === 0) {
      printLine(
        `wrote map epoch ${next.epoch} with ${nodeId} up to ${options.cluster}; no local cluster runs from ` +
          "there, so have each agent read it again: kill -HUP <agent pid>",
      );
      return;
    }
    const after = await waitForAdoption(file, next);
    const holding = after.nodes.filter((n) => n.epoch !== undefined && n.epoch >= next.epoch);
    const answering = after.nodes.filter((n) => n.epoch !== undefined);
    if (after.map.nodes.find((n) => n.id === nodeId)?.state === "up" && holding.length === answering.length) {
      printLine(
        `${nodeId} is in again: up at map epoch ${after.map.epoch}, held by ${holding.length} of ` +
          `${answering.length} agents answering; placement moves its pieces back at the rebuild rate ` +
          "(progress: `mosaic nodes`)",
      );
      return;
    }
    if (attempt >= ATTEMPTS) {
      throw new MosaicError(
        "MOSAIC_ERR_INTERNAL",
        `${nodeId} is still not in after ${ATTEMPTS} maps written (newest agents hold: epoch ` +
          `${after.map.epoch}, ${holding.length} of ${answering.length} agents at ${next.epoch} or later); ` +
          "see the agents' logs",
      );
    }
  }
}

/** Polls until every answering agent holds `next` or a newer map, or ADOPT_WAIT_MS pass; the last status seen. */
async function waitForAdoption(file: ClusterFile, next: ClusterMap): Promise<ClusterStatus> {
  const deadline = Date.now() + ADOPT_WAIT_MS;
  for (;;) {
    const status = clusterStatus(file, await askEveryAddress(file));
    const answering = status.nodes.filter((n) => n.epoch !== undefined);
    if (answering.every((n) => (n.epoch as number) >= next.epoch) || Date.now() > deadline) return status;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
