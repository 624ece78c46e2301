// The framework's reconcile handler against a real kube-apiserver: it runs on
// every pass over an object, and requeueAll() makes it run again when what it
// follows changed elsewhere (as StripedVolume status follows the cluster),
// with no change to the object itself.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type ControlPlane, startControlPlane } from "../../../e2e/control-plane/control-plane.ts";
import { silentLogger } from "../../../node-agent/src/log.ts";
import type { StripedVolume, StripedVolumeStatus } from "../../src/api/types.ts";
import { Operator } from "../../src/framework/operator.ts";
import { STRIPED_VOLUMES } from "../../src/framework/resources.ts";
import { eventually } from "../helpers/eventually.ts";

const CRDS = join(import.meta.dirname, "..", "..", "..", "crds");

describe("reconcile handler and requeueAll, on a real kube-apiserver", () => {
  let cp: ControlPlane;

  before(async () => {
    cp = await startControlPlane();
    await cp.installCrds([join(CRDS, "stripedvolumes.yaml")]);
  });

  after(async () => {
    await cp?.stop();
  });

  test("the status follows an outside value: written on the first pass, again after requeueAll", async () => {
    let outside: NonNullable<StripedVolumeStatus["phase"]> = "Pending";
    let passes = 0;
    const operator = new Operator({ kubeconfig: cp.kubeconfig, identity: "solo", log: silentLogger() });
    const controller = operator.handle<StripedVolume>({
      resource: STRIPED_VOLUMES,
      reconcile: async (sv, ctx) => {
        passes++;
        if (sv.status?.phase !== outside) await ctx.patchStatus({ phase: outside });
      },
    });
    await operator.start();
    try {
      const sv = {
        apiVersion: "mosaic.dev/v1alpha1",
        kind: "StripedVolume",
        metadata: { name: "followed" },
        spec: { chunkSize: "1Mi", redundancy: { replicas: 2 }, capacity: "1Ti" },
      };
      await cp.kubectl(["apply", "-f", "-"], { input: JSON.stringify(sv) });
      const phase = async () =>
        JSON.parse((await cp.kubectl(["get", "sv", "followed", "-o", "json"])).stdout).status?.phase;
      await eventually(async () => (await phase()) === "Pending", 20_000, "phase Pending");
      // Our own status write has come back through the watch and been handled: nothing more is due.
      await eventually(
        () => controller.informer.get("followed")?.status?.phase === "Pending",
        20_000,
        "the cache showing Pending",
      );
      await controller.drained();
      const before = passes;
      const version = JSON.parse((await cp.kubectl(["get", "sv", "followed", "-o", "json"])).stdout).metadata
        .generation;
      outside = "Healthy";
      controller.requeueAll();
      await eventually(async () => (await phase()) === "Healthy", 20_000, "phase Healthy after requeueAll");
      assert.ok(passes > before, "requeueAll ran the handler again");
      const after = JSON.parse((await cp.kubectl(["get", "sv", "followed", "-o", "json"])).stdout);
      assert.equal(after.metadata.generation, version, "the spec was not touched");
    } finally {
      await operator.stop();
    }
  });
});
