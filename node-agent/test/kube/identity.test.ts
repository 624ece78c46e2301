// The agent's identity in Kubernetes: Multus' network-status annotation read
// for channel A (net1) and B (net2), and every way it can be missing or wrong
// refused with a message that says what to fix.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { channelsFromNetworkStatus, identityFromEnv } from "../../src/kube/identity.ts";

/** What Multus writes: the cluster network first, then each attachment. */
const MULTUS = JSON.stringify([
  { name: "cbr0", interface: "eth0", ips: ["10.244.1.7"], mac: "0a:58:0a:f4:01:07", default: true, dns: {} },
  {
    name: "mosaic-system/mosaic-a",
    interface: "net1",
    ips: ["198.18.0.11"],
    mac: "5e:1c:2b:aa:00:01",
    dns: {},
  },
  {
    name: "mosaic-system/mosaic-b",
    interface: "net2",
    ips: ["198.18.1.11", "fd00::11"],
    mac: "5e:1c:2b:aa:00:02",
    dns: {},
  },
]);

const ENV = {
  MOSAIC_NODE_NAME: "worker-1",
  MOSAIC_POD_NAME: "mosaic-agent-x7k2p",
  MOSAIC_POD_NAMESPACE: "mosaic-system",
  MOSAIC_PORT: "7400",
  MOSAIC_NETWORK_STATUS: MULTUS,
};

describe("network-status", () => {
  test("net1 is channel A and net2 channel B, each on its first IP and the agent port", () => {
    const [a, b] = channelsFromNetworkStatus(MULTUS, 7400);
    assert.deepEqual(a, { interface: "net1", ip: "198.18.0.11", address: "198.18.0.11:7400" });
    assert.deepEqual(b, { interface: "net2", ip: "198.18.1.11", address: "198.18.1.11:7400" });
  });

  test("IPv6 addresses are bracketed", () => {
    const v6 = JSON.stringify([
      { interface: "net1", ips: ["fd00::1"] },
      { interface: "net2", ips: ["fd01::1"] },
    ]);
    const [a, b] = channelsFromNetworkStatus(v6, 7400);
    assert.equal(a.address, "[fd00::1]:7400");
    assert.equal(b.address, "[fd01::1]:7400");
  });

  const BAD: { why: string; text: string; says: RegExp }[] = [
    { why: "no annotation (the downward API gives an empty string)", text: "", says: /is empty.*Multus/ },
    { why: "not JSON", text: "[{interface: net1", says: /is not JSON/ },
    { why: "not a list", text: '{"interface":"net1"}', says: /must be a JSON list/ },
    {
      why: "net2 missing",
      text: JSON.stringify([
        { interface: "eth0", ips: ["10.0.0.1"] },
        { interface: "net1", ips: ["198.18.0.1"] },
      ]),
      says: /no interface net2 \(channel B\); interfaces attached: eth0, net1/,
    },
    {
      why: "an attachment without an address",
      text: JSON.stringify([
        { interface: "net1", ips: [] },
        { interface: "net2", ips: ["198.18.1.1"] },
      ]),
      says: /interface net1 \(channel A.*has no IP address.*ipam/,
    },
    {
      why: "an address that is not an IP",
      text: JSON.stringify([
        { interface: "net1", ips: ["not-an-ip"] },
        { interface: "net2", ips: ["198.18.1.1"] },
      ]),
      says: /net1.*has no IP address/,
    },
    {
      why: "both channels on one address",
      text: JSON.stringify([
        { interface: "net1", ips: ["198.18.0.1"] },
        { interface: "net2", ips: ["198.18.0.1"] },
      ]),
      says: /same address 198\.18\.0\.1/,
    },
    { why: "a list of garbage", text: "[null, 3]", says: /no interface net1.*interfaces attached: \?, \?/ },
  ];
  for (const { why, text, says } of BAD) {
    test(`refused, saying why: ${why}`, () => {
      assert.throws(() => channelsFromNetworkStatus(text, 7400), says);
    });
  }
});

describe("identity from the environment", () => {
  test("the downward API's fields and the addresses", () => {
    const id = identityFromEnv(ENV);
    assert.equal(id.nodeName, "worker-1");
    assert.equal(id.podName, "mosaic-agent-x7k2p");
    assert.equal(id.namespace, "mosaic-system");
    assert.equal(id.port, 7400);
    assert.deepEqual(
      id.channels.map((c) => c.address),
      ["198.18.0.11:7400", "198.18.1.11:7400"],
    );
  });

  test("every missing variable is named in one error", () => {
    assert.throws(
      () => identityFromEnv({ MOSAIC_NETWORK_STATUS: MULTUS, MOSAIC_PORT: "7400" }),
      (error: Error) =>
        /MOSAIC_NODE_NAME/.test(error.message) &&
        /MOSAIC_POD_NAME/.test(error.message) &&
        /MOSAIC_POD_NAMESPACE/.test(error.message),
    );
  });

  test("the pod IP, where kubelet's probe dials, when the downward API gives it", () => {
    assert.equal(identityFromEnv(ENV).podIP, undefined);
    assert.equal(identityFromEnv({ ...ENV, MOSAIC_POD_IP: "10.244.1.7" }).podIP, "10.244.1.7");
    assert.throws(
      () => identityFromEnv({ ...ENV, MOSAIC_POD_IP: "10.244.1" }),
      /MOSAIC_POD_IP=10.244.1 \(downward API status.podIP\) is not an IP address/,
    );
  });

  test("a port out of range is refused", () => {
    assert.throws(() => identityFromEnv({ ...ENV, MOSAIC_PORT: "70000" }), /MOSAIC_PORT=70000/);
    assert.throws(() => identityFromEnv({ ...ENV, MOSAIC_PORT: "7400x" }), /MOSAIC_PORT=7400x/);
  });
});
