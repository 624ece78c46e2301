// The operator framework against a real kube-apiserver: handlers per event,
// the finalizer, status patches and events; a watch broken by an API server
// restart comes back; of two replicas only the lease holder acts.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type ControlPlane, startControlPlane } from "../../../e2e/control-plane/control-plane.ts";
import { silentLogger } from "../../../node-agent/src/log.ts";
import type { StripedVolume } from "../../src/api/types.ts";
import { HANDLED_GENERATION, type KindHandlers } from "../../src/framework/controller.ts";
import { Operator } from "../../src/framework/operator.ts";
import { LEASES, objectPath, STRIPED_VOLUMES } from "../../src/framework/resources.ts";
import { eventually } from "../helpers/eventually.ts";

const CRDS = join(import.meta.dirname, "..", "..", "..", "crds");
const FINALIZER = "mosaic.dev/test-finalizer";

interface Call {
  event: "create" | "update" | "delete" | "timer";
  name: string;
  generation: number;
  by: string;
}

function volume(name: string, capacity = "1Ti"): string {
  return JSON.stringify({
    apiVersion: "mosaic.dev/v1alpha1",
    kind: "StripedVolume",
    metadata: { name },
    spec: { chunkSize: "1Mi", redundancy: { replicas: 2 }, capacity },
  });
}

function recordingHandlers(calls: Call[], by: string, extra: Partial<KindHandlers<StripedVolume>> = {}) {
  const record = (event: Call["event"]) => async (o: StripedVolume) => {
    calls.push({ event, name: o.metadata?.name ?? "", generation: o.metadata?.generation ?? 0, by });
  };
  const handlers: KindHandlers<StripedVolume> = {
    resource: STRIPED_VOLUMES,
    finalizer: FINALIZER,
    create: async (o, ctx) => {
      await record("create")(o);
      await ctx.patchStatus({ phase: "Pending" });
      await ctx.event("Normal", "Seen", `volume seen by ${by}`);
    },
    update: record("update"),
    delete: record("delete"),
    backoff: { baseMs: 100, maxMs: 1_000 },
    ...extra,
  };
  return handlers;
}

describe("operator framework on a real kube-apiserver", () => {
  let cp: ControlPlane;

  before(async () => {
    cp = await startControlPlane();
    await cp.installCrds([join(CRDS, "stripedvolumes.yaml")]);
  });

  after(async () => {
    await cp?.stop();
  });

  test("create, update and delete handlers run once each, behind a finalizer, with status and events", async () => {
    const calls: Call[] = [];
    const operator = new Operator({ kubeconfig: cp.kubeconfig, identity: "solo", log: silentLogger() });
    operator.handle(recordingHandlers(calls, "solo"));
    await operator.start();
    try {
      await cp.kubectl(["apply", "-f", "-"], { input: volume("one") });
      await eventually(() => calls.some((c) => c.event === "create"), 20_000, "the create handler");
      const read = async () => JSON.parse((await cp.kubectl(["get", "sv", "one", "-o", "json"])).stdout);
      await eventually(
        async () => (await read()).metadata.annotations?.[HANDLED_GENERATION] === "1",
        20_000,
        "generation 1 noted as handled",
      );
      const created = await read();
      assert.deepEqual(created.metadata.finalizers, [FINALIZER]);
      assert.equal(created.status.phase, "Pending");
      const events = await cp.kubectl([
        "get",
        "events",
        "-n",
        "default",
        "--field-selector=involvedObject.name=one",
        "-o",
        "json",
      ]);
      assert.ok(JSON.parse(events.stdout).items.some((e: { reason: string }) => e.reason === "Seen"));

      // A status change is no new generation: no update handler.
      await cp.kubectl([
        "patch",
        "sv",
        "one",
        "--subresource=status",
        "--type=merge",
        '--patch={"status":{"used":"1Gi"}}',
      ]);
      await cp.kubectl(["apply", "-f", "-"], { input: volume("one", "2Ti") });
      await eventually(() => calls.some((c) => c.event === "update"), 20_000, "the update handler");
      await cp.kubectl(["delete", "sv", "one", "--timeout=30s"]);
      await eventually(() => calls.some((c) => c.event === "delete"), 20_000, "the delete handler");
      const gone = await cp.kubectl(["get", "sv", "one"], { allowFailure: true });
      assert.match(gone.stderr, /NotFound/);
      // Marking an object for deletion is itself a new generation.
      assert.deepEqual(
        calls.map((c) => `${c.event}@${c.generation}`),
        ["create@1", "update@2", "delete@3"],
      );
    } finally {
      await operator.stop();
    }
  });

  test("a handler that fails is retried with backoff until it succeeds", async () => {
    let attempts = 0;
    const operator = new Operator({ kubeconfig: cp.kubeconfig, identity: "flaky", log: silentLogger() });
    operator.handle({
      resource: STRIPED_VOLUMES,
      backoff: { baseMs: 100, maxMs: 1_000 },
      create: async () => {
        attempts++;
        if (attempts < 3) throw new Error("not yet");
      },
    });
    await operator.start();
    try {
      await cp.kubectl(["apply", "-f", "-"], { input: volume("flaky") });
      await eventually(
        async () =>
          JSON.parse((await cp.kubectl(["get", "sv", "flaky", "-o", "json"])).stdout).metadata.annotations?.[
            HANDLED_GENERATION
          ] === "1",
        20_000,
        "the third attempt to succeed",
      );
      assert.equal(attempts, 3);
    } finally {
      await operator.stop();
      await cp.kubectl(["delete", "sv", "flaky"]);
    }
  });

  test("a watch broken by an API server restart is re-established", async () => {
    const calls: Call[] = [];
    const operator = new Operator({ kubeconfig: cp.kubeconfig, identity: "steady", log: silentLogger() });
    const controller = operator.handle(recordingHandlers(calls, "steady", { finalizer: undefined }));
    await operator.start();
    try {
      await cp.restartApiServer();
      await cp.kubectl(["apply", "-f", "-"], { input: volume("after-restart") });
      await eventually(
        () => calls.some((c) => c.event === "create" && c.name === "after-restart"),
        60_000,
        "the create handler after the restart",
      );
      assert.ok(controller.informer.restarts >= 1, "the informer was restarted");
    } finally {
      await operator.stop();
      await cp.kubectl(["delete", "sv", "after-restart"]);
    }
  });

  test("of two replicas only the lease holder acts; the other takes over when it goes", async () => {
    const calls: Call[] = [];
    const election = {
      namespace: "default",
      name: "mosaic-test-leader",
      leaseDurationMs: 3_000,
      renewDeadlineMs: 2_000,
      retryMs: 300,
    };
    const replicas = ["replica-a", "replica-b"].map((identity) => {
      const operator = new Operator({
        kubeconfig: cp.kubeconfig,
        identity,
        log: silentLogger(),
        leaderElection: election,
      });
      operator.handle(recordingHandlers(calls, identity, { finalizer: undefined }));
      return operator;
    });
    await Promise.all(replicas.map((r) => r.start()));
    try {
      await eventually(() => replicas.some((r) => r.leading), 20_000, "a leader");
      const first = replicas.find((r) => r.leading) as Operator;
      const second = replicas.find((r) => r !== first) as Operator;
      for (let i = 0; i < 5; i++) await cp.kubectl(["apply", "-f", "-"], { input: volume(`led-${i}`) });
      await eventually(() => calls.filter((c) => c.name.startsWith("led-")).length >= 5, 20_000, "5 creates");
      assert.equal(new Set(calls.map((c) => c.by)).size, 1, "one replica acted");
      assert.equal(second.leading, false);

      await first.stop();
      const tookMs = await eventually(() => second.leading, 20_000, "the second replica to lead");
      await cp.kubectl(["apply", "-f", "-"], { input: volume("led-after") });
      await eventually(() => calls.some((c) => c.name === "led-after"), 20_000, "the new leader's create");
      const after = calls.find((c) => c.name === "led-after") as Call;
      assert.notEqual(after.by, calls[0]?.by, "the new leader acted");
      assert.ok(
        tookMs < 3_000,
        `a released lease is taken in ${Math.round(tookMs)} ms, without waiting it out`,
      );
    } finally {
      await Promise.all(replicas.map((r) => r.stop()));
    }
  });

  test("a lease held by a replica that vanished is taken only after its duration", async () => {
    const name = "mosaic-test-ghost";
    await cp.kubectl(["apply", "-f", "-"], {
      input: JSON.stringify({
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name, namespace: "default" },
        spec: {
          holderIdentity: "ghost",
          leaseDurationSeconds: 3,
          renewTime: new Date().toISOString().replace("Z", "000Z"),
        },
      }),
    });
    const operator = new Operator({
      kubeconfig: cp.kubeconfig,
      identity: "heir",
      log: silentLogger(),
      leaderElection: {
        namespace: "default",
        name,
        leaseDurationMs: 3_000,
        renewDeadlineMs: 2_000,
        retryMs: 200,
      },
    });
    const started = performance.now();
    await operator.start();
    try {
      await eventually(() => operator.leading, 20_000, "the heir to lead");
      const waited = performance.now() - started;
      assert.ok(waited >= 3_000, `took over after ${Math.round(waited)} ms, not before the lease ran out`);
      const lease = await operator.rest.get<{ spec: { holderIdentity: string; leaseTransitions: number } }>(
        objectPath(LEASES, name, "default"),
      );
      assert.equal(lease.spec.holderIdentity, "heir");
      assert.equal(lease.spec.leaseTransitions, 1);
    } finally {
      await operator.stop();
    }
  });
});
