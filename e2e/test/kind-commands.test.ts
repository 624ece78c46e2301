// The command lines of e2e:kind's faults. Pure builders checked for their
// shape, and the iproute2 and nsenter ones run for real here, in a network
// namespace this test makes (as `docker exec` runs them in a kind node's):
// NICs found by address and renamed, every NIC down and up with its routes
// put back, a link in a process' network namespace set down and up through
// nsenter. Skipped, with the reason, without root and iproute2.
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { harnessUnavailable } from "../harness/ip.ts";
import {
  containerdId,
  crictlInspect,
  dockerExec,
  kill9,
  linkInPod,
  linksSet,
  nicAddresses,
  nodeNics,
  pidOfInspect,
  ROUTES,
  renameNics,
  restoreRoutes,
} from "../kind/commands.ts";
import { kindPlan } from "../kind/plan.ts";

describe("kind fault commands (pure)", () => {
  test("kill -9 of a pod's container: containerd id, crictl inspect, its pid", () => {
    const id = "4f2b9c0d1e3a5b7c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e";
    assert.equal(containerdId(`containerd://${id}`), id);
    assert.throws(() => containerdId(undefined), /not containerd's .* is the container running/);
    assert.throws(() => containerdId(`docker://${id}`), /not containerd's/);
    assert.deepEqual(dockerExec("w", crictlInspect(id)), [
      "exec",
      "w",
      "crictl",
      "inspect",
      "--output",
      "json",
      id,
    ]);
    assert.equal(
      pidOfInspect(JSON.stringify({ status: { state: "CONTAINER_RUNNING" }, info: { pid: 4242 } })),
      4242,
    );
    assert.throws(() => pidOfInspect(JSON.stringify({ info: { pid: 0 } })), /no pid/);
    assert.throws(() => pidOfInspect(JSON.stringify({ status: {} })), /no pid/);
    assert.deepEqual(kill9(4242), ["kill", "-9", "4242"]);
  });

  test("a node's NICs: eth0 (the API) and both channels'", () => {
    assert.deepEqual(nodeNics(kindPlan({ name: "k", workers: 2 })), ["eth0", "mosaic-a", "mosaic-b"]);
  });

  test("routes to restore: those of the NICs only, linkdown dropped, none when none", () => {
    const saved = [
      "default via 198.18.130.1 dev eth0 linkdown",
      "198.18.128.0/24 dev mosaic-a proto kernel scope link src 198.18.128.3",
      "198.19.193.0/24 via 198.18.130.4 dev eth0",
      "198.19.192.2 dev veth1234 scope host",
      "198.18.130.0/24 dev eth0x proto kernel scope link src 198.18.130.9",
    ].join("\n");
    assert.deepEqual(restoreRoutes(saved, ["eth0", "mosaic-a"]), [
      "sh",
      "-c",
      "ip route replace default via 198.18.130.1 dev eth0 && " +
        "ip route replace 198.18.128.0/24 dev mosaic-a proto kernel scope link src 198.18.128.3 && " +
        "ip route replace 198.19.193.0/24 via 198.18.130.4 dev eth0",
    ]);
    assert.deepEqual(restoreRoutes("", ["eth0"]), []);
  });

  test("NICs named by the address Docker gave them; an address no NIC has is an error", () => {
    const current = new Map([
      ["eth0", "198.18.130.3"],
      ["eth1", "198.18.129.2"],
      ["eth2", "198.18.128.2"],
    ]);
    const wanted = [
      { address: "198.18.128.2", nic: "mosaic-a" },
      { address: "198.18.129.2", nic: "mosaic-b" },
    ];
    assert.deepEqual(renameNics(current, wanted), [
      "sh",
      "-c",
      "ip link set eth2 down && ip link set eth2 name mosaic-a && ip link set mosaic-a up && " +
        "ip link set eth1 down && ip link set eth1 name mosaic-b && ip link set mosaic-b up",
    ]);
    const named = new Map([
      ["mosaic-a", "198.18.128.2"],
      ["mosaic-b", "198.18.129.2"],
    ]);
    assert.deepEqual(renameNics(named, wanted), []);
    assert.throws(() => renameNics(new Map(), wanted), /no NIC has 198.18.128.2/);
  });
});

describe("kind fault commands, run in a network namespace", () => {
  const ns = `mosaic-kindcmd-${process.pid}`;
  let skip: string | undefined;
  let sleeper: ChildProcess | undefined;
  const inNs = (argv: readonly string[]) =>
    execFileSync("ip", ["netns", "exec", ns, ...argv], { encoding: "utf8", timeout: 10_000 });

  before(async () => {
    skip = await harnessUnavailable();
    if (skip !== undefined) return;
    execFileSync("ip", ["netns", "add", ns]);
    // veths standing for what Docker attached (their peers, up, in the namespace too): eth0 for the
    // node network with routes through it, eth1 and eth2 the channels'.
    inNs(["ip", "link", "set", "lo", "up"]);
    for (const [nic, address] of [
      ["eth0", "198.18.130.3/24"],
      ["eth1", "198.18.129.2/24"],
      ["eth2", "198.18.128.2/24"],
    ] as const) {
      inNs(["ip", "link", "add", nic, "type", "veth", "peer", "name", `${nic}-peer`]);
      inNs(["ip", "link", "set", `${nic}-peer`, "up"]);
      inNs(["ip", "addr", "add", address, "dev", nic]);
      inNs(["ip", "link", "set", nic, "up"]);
    }
    inNs(["ip", "route", "add", "default", "via", "198.18.130.1", "dev", "eth0"]);
    inNs(["ip", "route", "add", "198.19.193.0/24", "via", "198.18.130.4", "dev", "eth0"]);
  });

  after(() => {
    if (sleeper?.pid !== undefined && sleeper.exitCode === null) sleeper.kill("SIGKILL");
    if (skip === undefined) execFileSync("ip", ["netns", "del", ns]);
  });

  test("NICs found by address and renamed to the channels' names", (t) => {
    if (skip !== undefined) return t.skip(skip);
    const current = nicAddresses(inNs(["ip", "-o", "-4", "addr", "show"]));
    assert.equal(current.get("eth2"), "198.18.128.2");
    const rename = renameNics(current, [
      { address: "198.18.128.2", nic: "mosaic-a" },
      { address: "198.18.129.2", nic: "mosaic-b" },
    ]);
    inNs(rename);
    const after = nicAddresses(inNs(["ip", "-o", "-4", "addr", "show"]));
    assert.equal(after.get("mosaic-a"), "198.18.128.2");
    assert.equal(after.get("mosaic-b"), "198.18.129.2");
    assert.ok(!after.has("eth1") && !after.has("eth2"));
  });

  test("the node cut off: every NIC down, its routes gone; plugged back: up, every route back", (t) => {
    if (skip !== undefined) return t.skip(skip);
    const nics = nodeNics(kindPlan({ name: "k", workers: 2 }));
    const before = inNs(ROUTES);
    assert.match(before, /default via 198.18.130.1 dev eth0/);
    inNs(linksSet(nics, false));
    const down = inNs(["ip", "-o", "link", "show"]);
    for (const nic of nics) assert.match(down, new RegExp(`\\d+: ${nic}(@\\S+)?: <[^>]*> .*state DOWN`));
    assert.doesNotMatch(inNs(ROUTES), /default/, "a link down takes its routes with it");
    inNs(linksSet(nics, true));
    inNs(restoreRoutes(before, nics));
    const sorted = (text: string) => text.trim().split("\n").sort();
    assert.deepEqual(sorted(inNs(ROUTES)), sorted(before));
  });

  test("a link in a process' network namespace, through nsenter with its pid", async (t) => {
    if (skip !== undefined) return t.skip(skip);
    sleeper = spawn("ip", ["netns", "exec", ns, "sleep", "60"], { stdio: "ignore" });
    const pid = sleeper.pid as number;
    // `ip netns exec` execs sleep: once it has entered the namespace, the pid's net namespace is ns's.
    const nsInode = execFileSync("stat", ["-L", "-c", "%i", `/run/netns/${ns}`], { encoding: "utf8" }).trim();
    for (let i = 0; i < 100; i++) {
      const link = execFileSync("stat", ["-L", "-c", "%i", `/proc/${pid}/ns/net`], {
        encoding: "utf8",
      }).trim();
      if (link === nsInode) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const [file, ...rest] = linkInPod(pid, "mosaic-a", false);
    execFileSync(file as string, rest);
    assert.match(inNs(["ip", "-o", "link", "show", "mosaic-a"]), /state DOWN/);
    const [upFile, ...upRest] = linkInPod(pid, "mosaic-a", true);
    execFileSync(upFile as string, upRest);
    assert.doesNotMatch(inNs(["ip", "-o", "link", "show", "mosaic-a"]), /state DOWN/);
  });
});
