// The CRDs against a real kube-apiserver: the examples are accepted, and bad
// specs are refused by the API server itself (OpenAPI schema and CEL rules)
// with a message a user can act on, through the real kubectl.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type ControlPlane, startControlPlane } from "../../e2e/control-plane/control-plane.ts";

const CRDS = join(import.meta.dirname, "..", "..", "crds");

interface VolumeSpecYaml {
  chunkSize?: unknown;
  redundancy?: unknown;
  capacity?: unknown;
  networks?: unknown;
  nodeSelector?: unknown;
}

function volume(name: string, spec: VolumeSpecYaml): string {
  return JSON.stringify({
    apiVersion: "mosaic.dev/v1alpha1",
    kind: "StripedVolume",
    metadata: { name },
    spec,
  });
}

const GOOD: VolumeSpecYaml = {
  chunkSize: "1Mi",
  redundancy: { erasure: { data: 2, parity: 1 } },
  capacity: "1Ti",
};

/** Each is refused on create; `says` is what the refusal must tell the user. */
const BAD_SPECS: { why: string; spec: VolumeSpecYaml; says: RegExp }[] = [
  { why: "chunk size not a power of two", spec: { ...GOOD, chunkSize: "3Mi" }, says: /power of two/ },
  { why: "chunk size below 64Ki", spec: { ...GOOD, chunkSize: "32Ki" }, says: /power of two from 64Ki/ },
  { why: "chunk size above 64Mi", spec: { ...GOOD, chunkSize: "128Mi" }, says: /to 64Mi/ },
  { why: "chunk size not a quantity", spec: { ...GOOD, chunkSize: "big" }, says: /chunkSize must be/ },
  {
    why: "both replicas and erasure",
    spec: { ...GOOD, redundancy: { replicas: 3, erasure: { data: 2, parity: 1 } } },
    says: /exactly one of replicas or erasure/,
  },
  {
    why: "no redundancy named",
    spec: { ...GOOD, redundancy: {} },
    says: /exactly one of replicas or erasure/,
  },
  {
    why: "zero data pieces",
    spec: { ...GOOD, redundancy: { erasure: { data: 0, parity: 1 } } },
    says: /erasure\.data.*greater than or equal to 1/,
  },
  {
    why: "negative parity",
    spec: { ...GOOD, redundancy: { erasure: { data: 2, parity: -1 } } },
    says: /erasure\.parity.*greater than or equal to 0/,
  },
  {
    why: "too many data pieces",
    spec: { ...GOOD, redundancy: { erasure: { data: 25, parity: 2 } } },
    says: /erasure\.data.*less than or equal to 24/,
  },
  {
    why: "too many parity pieces",
    spec: { ...GOOD, redundancy: { erasure: { data: 4, parity: 7 } } },
    says: /erasure\.parity.*less than or equal to 6/,
  },
  {
    why: "erasure without parity",
    spec: { ...GOOD, redundancy: { erasure: { data: 4 } } },
    says: /erasure\.parity: Required value/,
  },
  {
    why: "zero replicas",
    spec: { ...GOOD, redundancy: { replicas: 0 } },
    says: /replicas.*greater than or equal to 1/,
  },
  {
    why: "too many replicas",
    spec: { ...GOOD, redundancy: { replicas: 33 } },
    says: /replicas.*less than or equal to 32/,
  },
  { why: "zero capacity", spec: { ...GOOD, capacity: "0" }, says: /capacity must be a positive quantity/ },
  {
    why: "negative capacity",
    spec: { ...GOOD, capacity: "-5Gi" },
    says: /capacity must be a positive quantity/,
  },
  {
    why: "capacity missing",
    spec: { chunkSize: "1Mi", redundancy: { replicas: 2 } },
    says: /spec\.capacity: Required value/,
  },
  {
    why: "both channels on one network",
    spec: { ...GOOD, networks: { channelA: "net", channelB: "net" } },
    says: /channelA and channelB must be different networks/,
  },
  {
    why: "replicas as a string",
    spec: { ...GOOD, redundancy: { replicas: "three" } },
    says: /replicas: Invalid value/,
  },
];

describe("CRDs on a real kube-apiserver", () => {
  let cp: ControlPlane;

  before(async () => {
    cp = await startControlPlane();
    await cp.kubectl([
      "apply",
      "-f",
      join(CRDS, "stripedvolumes.yaml"),
      "-f",
      join(CRDS, "clusternodes.yaml"),
    ]);
    await cp.kubectl([
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      "crd/stripedvolumes.mosaic.dev",
      "crd/clusternodes.mosaic.dev",
    ]);
  });

  after(async () => {
    await cp?.stop();
  });

  test("the example volumes are accepted and read back with their printer columns", async () => {
    await cp.kubectl(["apply", "-f", join(CRDS, "examples")]);
    const table = await cp.kubectl(["get", "sv"]);
    const header = table.stdout.split("\n")[0] ?? "";
    for (const column of ["NAME", "PHASE", "REDUNDANCY", "SIZE", "USED", "HEALTHY", "DEGRADED", "AGE"]) {
      assert.match(header, new RegExp(`\\b${column}\\b`), `kubectl get sv shows ${column}`);
    }
    assert.match(table.stdout, /video-library\s.*20Ti/);
    assert.match(table.stdout, /thumbnails\s.*500Gi/);
    const defaulted = JSON.parse((await cp.kubectl(["get", "sv", "thumbnails", "-o", "json"])).stdout);
    assert.deepEqual(
      defaulted.spec.networks ?? null,
      null,
      "no networks block is invented when none is given",
    );
  });

  test(`${BAD_SPECS.length} bad specs are each refused with a readable message`, async () => {
    const failures: string[] = [];
    for (const [i, { why, spec, says }] of BAD_SPECS.entries()) {
      const result = await cp.kubectl(["apply", "-f", "-"], {
        input: volume(`bad-${i}`, spec),
        allowFailure: true,
      });
      if (result.code === 0) failures.push(`${why}: accepted`);
      else if (!says.test(result.stderr)) failures.push(`${why}: refused, but said ${result.stderr.trim()}`);
    }
    assert.deepEqual(failures, []);
    const left = await cp.kubectl(["get", "sv", "-o", "name"]);
    assert.doesNotMatch(left.stdout, /bad-/, "no bad volume was stored");
  });

  test("layout is immutable and capacity never shrinks, but may grow", async () => {
    await cp.kubectl(["apply", "-f", "-"], { input: volume("growing", GOOD) });
    const update = async (spec: VolumeSpecYaml) =>
      cp.kubectl(["apply", "-f", "-"], { input: volume("growing", spec), allowFailure: true });

    const chunk = await update({ ...GOOD, chunkSize: "2Mi" });
    assert.notEqual(chunk.code, 0);
    assert.match(chunk.stderr, /chunkSize is immutable/);

    const redundancy = await update({ ...GOOD, redundancy: { erasure: { data: 4, parity: 2 } } });
    assert.notEqual(redundancy.code, 0);
    assert.match(redundancy.stderr, /redundancy is immutable/);

    const shrink = await update({ ...GOOD, capacity: "512Gi" });
    assert.notEqual(shrink.code, 0);
    assert.match(shrink.stderr, /capacity may grow but never shrink/);

    const grow = await update({ ...GOOD, capacity: "2Ti" });
    assert.equal(grow.code, 0, grow.stderr);
    const stored = JSON.parse((await cp.kubectl(["get", "sv", "growing", "-o", "json"])).stdout);
    assert.equal(stored.spec.capacity, "2Ti");
  });

  test("a ClusterNode shows its channels in kubectl get cn, and its node name is fixed", async () => {
    await cp.kubectl(["apply", "-f", "-"], {
      input: JSON.stringify({
        apiVersion: "mosaic.dev/v1alpha1",
        kind: "ClusterNode",
        metadata: { name: "worker-1" },
        spec: { nodeName: "worker-1" },
      }),
    });
    const status = {
      status: {
        phase: "Up",
        channelA: { address: "198.18.1.1:7400", interface: "net1", state: "Down" },
        channelB: { address: "198.18.2.1:7400", interface: "net2", state: "Up" },
        activeChannel: "B",
        load: "Low",
        conditions: [{ type: "Ready", status: "True", reason: "ChannelBOnly", message: "channel A down" }],
      },
    };
    await cp.kubectl([
      "patch",
      "cn",
      "worker-1",
      "--subresource=status",
      "--type=merge",
      `--patch=${JSON.stringify(status)}`,
    ]);
    const table = await cp.kubectl(["get", "cn"]);
    assert.match(
      table.stdout.split("\n")[0] ?? "",
      /NAME\s+NODE\s+CHANNEL A\s+CHANNEL B\s+ACTIVE\s+LOAD\s+READY\s+AGE/,
    );
    assert.match(table.stdout, /worker-1\s+worker-1\s+Down\s+Up\s+B\s+Low\s+True/);

    const moved = await cp.kubectl(
      ["patch", "cn", "worker-1", "--type=merge", '--patch={"spec":{"nodeName":"worker-2"}}'],
      { allowFailure: true },
    );
    assert.notEqual(moved.code, 0);
    assert.match(moved.stderr, /nodeName is immutable/);

    const badState = await cp.kubectl(
      [
        "patch",
        "cn",
        "worker-1",
        "--subresource=status",
        "--type=merge",
        '--patch={"status":{"load":"Extreme"}}',
      ],
      { allowFailure: true },
    );
    assert.notEqual(badState.code, 0);
    assert.match(badState.stderr, /Unsupported value: "Extreme"/);
  });
});
