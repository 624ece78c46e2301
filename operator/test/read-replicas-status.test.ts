// Temporary read copies in a StripedVolume's status (volume-status.ts): the
// agents' per-volume counts summed per serving node and in all, cleared when
// none is left, written only when they move, and one Event per node whose
// count moved.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { StripedVolume, StripedVolumeStatus } from "../src/api/types.ts";
import type { MemberView } from "../src/cluster-view.ts";
import { readReplicaChanges, readReplicasOf, statusSays, volumeStatus } from "../src/volume-status.ts";

const SV: StripedVolume = {
  apiVersion: "mosaic.dev/v1alpha1",
  kind: "StripedVolume",
  metadata: { name: "hot", generation: 1, uid: "u1" },
  spec: { chunkSize: "1Mi", capacity: "10Gi", redundancy: { replicas: 2 } },
};

function member(id: string, readCopies: number, state: MemberView["state"] = "up"): MemberView {
  return {
    id,
    state,
    liveness: "live",
    status: {
      volumes: [{ name: "hot", pieces: 10, bytes: 10 * 2 ** 20, ...(readCopies > 0 ? { readCopies } : {}) }],
      rebuild: { state: "Idle", epoch: 5, settledEpoch: 5, bytesLeft: 0, bytesPerSecond: 0, etaSeconds: 0 },
    },
  };
}

describe("read replicas in StripedVolume status", () => {
  test("counted per serving node and in all; absent (null: cleared) while none is held", () => {
    const hot = volumeStatus(SV, { epoch: 5, members: [member("n2", 2), member("n0", 0), member("n1", 1)] });
    assert.deepEqual(hot.status.readReplicas, {
      count: 3,
      nodes: [
        { name: "n1", count: 1 },
        { name: "n2", count: 2 },
      ],
    });
    assert.equal(hot.status.phase, "Healthy", "copies change nothing about health");
    const down = volumeStatus(SV, { epoch: 5, members: [member("n2", 2, "down"), member("n1", 1)] });
    assert.deepEqual(
      down.status.readReplicas,
      { count: 1, nodes: [{ name: "n1", count: 1 }] },
      "a down node serves none",
    );
    const cool = volumeStatus(SV, { epoch: 5, members: [member("n0", 0), member("n1", 0)] });
    assert.equal(cool.status.readReplicas, null);
    assert.equal(readReplicasOf([]), null);
  });

  test("the status is rewritten when the copies move, and not otherwise", () => {
    const v = volumeStatus(SV, { epoch: 5, members: [member("n1", 1), member("n2", 0)] });
    const stored: StripedVolumeStatus = {
      ...v.status,
      rebuild: undefined,
      readReplicas: v.status.readReplicas ?? undefined,
    };
    assert.equal(statusSays(stored, v.status), true);
    const more = volumeStatus(SV, { epoch: 5, members: [member("n1", 1), member("n2", 1)] });
    assert.equal(statusSays(stored, more.status), false);
    const none = volumeStatus(SV, { epoch: 5, members: [member("n1", 0), member("n2", 0)] });
    assert.equal(statusSays(stored, none.status), false);
    assert.equal(statusSays({ ...stored, readReplicas: undefined }, none.status), true);
  });

  test("one Event per node whose count moved, saying which way", () => {
    const before = {
      count: 2,
      nodes: [
        { name: "n1", count: 1 },
        { name: "n2", count: 1 },
      ],
    };
    const after = readReplicasOf([
      { name: "n1", count: 0 },
      { name: "n2", count: 1 },
      { name: "n3", count: 2 },
    ]);
    assert.deepEqual(
      readReplicaChanges(before, after).map((c) => `${c.reason}: ${c.message}`),
      [
        "ReadReplicaRemoved: 1 read copy drained and removed from n1 (the load is gone, or the file changed); 0 there, 3 in all",
        "ReadReplicaAdded: 2 read copies of hot stripes added on n3 (every holder High); 2 there, 3 in all",
      ],
    );
    assert.deepEqual(readReplicaChanges(after, after), []);
    assert.deepEqual(readReplicaChanges(undefined, null), []);
  });
});
