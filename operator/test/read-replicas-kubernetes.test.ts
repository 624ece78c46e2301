// Temporary read copies reported through Kubernetes, on a real kube-apiserver:
// three real `mosaic agent --kubernetes` processes (the chart's RBAC) and the
// operator's controllers in process. A read copy of a file's stripe is placed
// on the node that holds none, the way a file's owner places one (the
// ReadCopies call registers it, a PutPiece writes it): its agent reports it
// in its ClusterNode (status.volumes[].readCopies, kept by the apiserver's
// schema), the operator writes StripedVolume status.readReplicas and records
// a ReadReplicaAdded Event; released, it leaves the disk, the count goes and
// a ReadReplicaRemoved Event says so. (Who decides to add and drain copies,
// from real load, is node-agent/test/load/read-copies.test.ts.)
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { crc32c } from "@node-rs/crc32";
import type { ControlPlane } from "../../e2e/control-plane/control-plane.ts";
import { placeFileStripe } from "../../node-agent/src/core/file-placement.ts";
import type { FileManifest } from "../../node-agent/src/core/manifest.ts";
import { silentLogger } from "../../node-agent/src/log.ts";
import { PeerClients } from "../../node-agent/src/rpc/peer-client.ts";
import { readCopyKey } from "../../node-agent/src/storage/piece-key.ts";
import { putTestFile, testFile } from "../../node-agent/test/helpers/cluster-files.ts";
import { CLUSTER_MAP_CONFIGMAP, CLUSTER_MAP_KEY, decodeClusterMap } from "../src/api/cluster-map.ts";
import type { ClusterNode, StripedVolume, StripedVolumeStatus } from "../src/api/types.ts";
import type { Operator } from "../src/framework/operator.ts";
import { CLUSTER_NODES, objectPath, STRIPED_VOLUMES } from "../src/framework/resources.ts";
import { runMembershipAndVolumes } from "../src/membership-and-volumes.ts";
import { eventually } from "./helpers/eventually.ts";
import { eventsOn, type KubeAgents } from "./helpers/kube-agents.ts";
import { type OperatorWithAgents, startOperatorWithAgents } from "./helpers/operator-with-agents.ts";

const NS = "mosaic-system";
const VOLUME = "hot";
const WAIT_MS = 90_000;

describe("read replicas in StripedVolume status and Events, on a real kube-apiserver", () => {
  let cp: ControlPlane;
  let operator: Operator;
  let agents: KubeAgents;
  let setting: OperatorWithAgents | undefined;
  let peers: PeerClients | undefined;
  const logs = () => [0, 1, 2].map((i) => `--- ${agents.nodeName(i)}\n${agents.logTail(i)}`).join("\n");
  const status = async (): Promise<StripedVolumeStatus | undefined> =>
    (await operator.rest.get<StripedVolume>(objectPath(STRIPED_VOLUMES, VOLUME))).status;
  const events = async () =>
    (await eventsOn(cp, "StripedVolume", VOLUME)).map((e) => `${e.type} ${e.reason}: ${e.message}`);

  before(async () => {
    setting = await startOperatorWithAgents(
      NS,
      (o) => runMembershipAndVolumes(o, { namespace: NS, outGraceMs: 5_000, log: silentLogger() }),
      { count: 3, leaseSeconds: 2, outGraceMs: 600_000 },
    );
    ({ cp, operator, agents } = setting);
  });

  after(async () => {
    peers?.close();
    await setting?.stop();
  });

  test("a copy held shows per node and in all with ReadReplicaAdded; released, it goes with ReadReplicaRemoved", async () => {
    const sv = {
      apiVersion: "mosaic.dev/v1alpha1",
      kind: "StripedVolume",
      metadata: { name: VOLUME },
      spec: { chunkSize: "64Ki", redundancy: { replicas: 2 }, capacity: "1Gi" },
    };
    await cp.kubectl(["apply", "-f", "-"], { input: JSON.stringify(sv) });
    await eventually(async () => (await status())?.phase === "Healthy", WAIT_MS, `volume Healthy\n${logs()}`);
    const manifest = (await putTestFile(
      agents.client(0),
      testFile(VOLUME, "clip.mp4", 48 * 1024),
    )) as FileManifest;
    const r = await cp.kubectl(["get", "cm", "-n", NS, CLUSTER_MAP_CONFIGMAP, "-o", "json"]);
    const map = decodeClusterMap(JSON.parse(r.stdout).data[CLUSTER_MAP_KEY], "test");
    peers = new PeerClients({ map: () => map, log: silentLogger() });
    const placed = placeFileStripe(map, manifest, 0);
    const target = map.nodes.map((n) => n.id).find((id) => !placed.includes(id)) as string;
    const piece = { volume: VOLUME, fileId: manifest.fileId, version: manifest.version, stripe: 0, slot: 0 };
    const { data } = await peers.getPiece(placed[0] as string, piece);
    const key = readCopyKey(piece);
    const added = performance.now();
    await peers.readCopies(target, { op: "hold", keys: [key], leaseMs: 600_000 });
    await peers.putPiece(
      target,
      {
        key,
        dataLengthBytes: data.reduce((n, d) => n + d.length, 0),
        crc32c: data.reduce((c, d) => crc32c(d, c), 0),
      },
      data,
    );

    await eventually(
      async () => (await status())?.readReplicas?.count === 1,
      WAIT_MS,
      `status.readReplicas counts the copy; last ${JSON.stringify(await status())}\n${logs()}`,
    );
    const shownMs = performance.now() - added;
    const shown = (await status()) as StripedVolumeStatus;
    assert.deepEqual(shown.readReplicas, { count: 1, nodes: [{ name: target, count: 1 }] });
    assert.equal(shown.phase, "Healthy", "a read copy is no redundancy and no harm");
    const node = await operator.rest.get<ClusterNode>(objectPath(CLUSTER_NODES, target));
    assert.equal(
      node.status?.volumes?.find((v) => v.name === VOLUME)?.readCopies,
      1,
      "kept by the ClusterNode schema",
    );
    await eventually(
      async () =>
        (await events()).some((e) =>
          e.startsWith(`Normal ReadReplicaAdded: 1 read copy of hot stripes added on ${target}`),
        ),
      WAIT_MS,
      `a ReadReplicaAdded Event; have\n${(await events()).join("\n")}`,
    );
    const wide = (await cp.kubectl(["get", "sv", VOLUME, "-o", "wide"])).stdout;
    assert.match(wide, /READ-REPLICAS/);
    assert.match(wide, new RegExp(`^${VOLUME}\\s+Healthy\\s.*\\s1\\s+\\S+$`, "m"));

    const released = performance.now();
    const reply = (await peers.readCopies(target, { op: "release", keys: [key], force: false })) as {
      released: boolean[];
    };
    assert.deepEqual(reply.released, [true]);
    assert.equal(await peers.statPiece(target, key), undefined, "gone from its disk");
    await eventually(
      async () => (await status())?.readReplicas === undefined,
      WAIT_MS,
      `status.readReplicas cleared; last ${JSON.stringify(await status())}`,
    );
    const clearedMs = performance.now() - released;
    await eventually(
      async () =>
        (await events()).some((e) =>
          e.startsWith(`Normal ReadReplicaRemoved: 1 read copy drained and removed from ${target}`),
        ),
      WAIT_MS,
      `a ReadReplicaRemoved Event; have\n${(await events()).join("\n")}`,
    );
    console.log(
      `# read copy on ${target}: in StripedVolume status ${Math.round(shownMs)} ms after it was written, ` +
        `cleared ${Math.round(clearedMs)} ms after its release\n${wide.replace(/^/gm, "# ")}`,
    );
  });
});
