// The kubelet's pod worker for one pod on one harness node: set the pod up
// (volumes, then Multus' attachments and network-status), start each
// container as a process (container.ts), probe its readiness, restart it per
// restartPolicy, report status as it changes, and on deletion stop every
// container (SIGTERM, SIGKILL after the grace period), delete the
// attachments and the pod's directory. The API object is then deleted by the
// kubelet (kubelet.ts), as a kubelet confirms a pod's termination.
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { KubeRest } from "../../operator/src/framework/kube-rest.ts";
import { newerOf } from "../../operator/src/framework/resources.ts";
import { ContainerProcess } from "./container.ts";
import { tool } from "./ip.ts";
import { AttachmentBusy, attach, detach } from "./multus.ts";
import type { NodeHost } from "./network.ts";
import {
  ContainerConfigError,
  containerArgv,
  containerEnv,
  containerScript,
  type Images,
  runAs,
} from "./pod-spec.ts";
import {
  type ContainerRecord,
  type PodCondition,
  podStatus,
  type RestartPolicy,
  restartDelayMs,
  terminatedState,
} from "./pod-status.ts";
import { ProbeTracker, probeOnce } from "./probes.ts";
import { containerMounts, prepareVolumes } from "./volumes.ts";

export interface PodRunnerOptions {
  rest: KubeRest;
  node: NodeHost;
  /** The node's root directory (hostPath volumes live under it). */
  nodeRoot: string;
  /** This pod's directory: volumes, overlays, container logs. */
  podDir: string;
  images: Images;
  /** What kube-proxy would send the `kubernetes` Service to: kube-apiserver's address and port. */
  apiServer: { host: string; port: number };
  backoff: { baseMs: number; maxMs: number };
  log: Logger;
}

/** How long a failed pod setup (a missing ConfigMap, a busy interface) waits before it is tried again. */
const SETUP_RETRY_MS = { first: 250, max: 5_000 };

export class PodRunner {
  readonly uid: string;
  pod: V1Pod;
  readonly #o: PodRunnerOptions;
  readonly #log: Logger;
  readonly #slots: ContainerSlot[];
  readonly #startTime = new Date().toISOString();
  #volumes = new Map<string, string>();
  #interfaces: string[] = [];
  #sandboxReady = false;
  #stopping = false;
  #published = "";
  #publishing: Promise<void> = Promise.resolve();
  #setup: Promise<void> | undefined;
  #terminated: Promise<void> | undefined;

  constructor(pod: V1Pod, options: PodRunnerOptions) {
    this.pod = pod;
    this.uid = pod.metadata?.uid ?? "";
    this.#o = options;
    this.#log = options.log.child({
      pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`,
      node: options.node.name,
    });
    this.#slots = (pod.spec?.containers ?? []).map((c) => new ContainerSlot(this, c));
  }

  get log(): Logger {
    return this.#log;
  }

  get options(): PodRunnerOptions {
    return this.#o;
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  get restartPolicy(): RestartPolicy {
    return (this.pod.spec?.restartPolicy ?? "Always") as RestartPolicy;
  }

  get volumes(): ReadonlyMap<string, string> {
    return this.#volumes;
  }

  /** The pids of the containers running now. */
  pids(): number[] {
    return this.#slots.flatMap((s) => (s.process?.running ? [s.process.pid] : []));
  }

  /** Sets the pod up and starts its containers; returns once they have been started (or it is stopping). */
  run(): Promise<void> {
    this.#setup ??= this.#setUp();
    return this.#setup;
  }

  async #setUp(): Promise<void> {
    if ((this.pod.spec?.initContainers ?? []).length > 0) {
      this.#failAll("CreateContainerConfigError", "init containers are not supported by the harness");
      return;
    }
    this.publish();
    let retryMs = SETUP_RETRY_MS.first;
    let volumesReady = false;
    while (!this.#stopping) {
      try {
        if (!volumesReady) {
          this.#volumes = await prepareVolumes({
            rest: this.#o.rest,
            pod: this.pod,
            nodeRoot: this.#o.nodeRoot,
            podDir: this.#o.podDir,
          });
          volumesReady = true;
        }
        const attached = await attach(this.#o.rest, this.#o.node, this.pod);
        this.#interfaces = attached.interfaces;
        this.pod = attached.pod;
        break;
      } catch (error) {
        const message = (error as Error).message;
        if (!(error instanceof AttachmentBusy))
          this.#log.warn({ err: message }, "pod setup failed; trying again");
        for (const slot of this.#slots) slot.wait("ContainerCreating", message);
        this.publish();
        await new Promise((resolve) => setTimeout(resolve, retryMs));
        retryMs = Math.min(SETUP_RETRY_MS.max, retryMs * 2);
      }
    }
    if (this.#stopping) return;
    this.#sandboxReady = true;
    for (const slot of this.#slots) slot.start();
    this.publish();
  }

  /** Takes the newest copy of the pod from the watch. */
  update(pod: V1Pod): void {
    // A watch event can lag behind the copy our own write returned (network-status, status).
    if (pod.metadata?.uid === this.uid) this.pod = newerOf(pod, this.pod) as V1Pod;
  }

  /** Stops every container (SIGTERM, then SIGKILL after `graceMs`), deletes attachments and the pod's directory. */
  terminate(graceMs: number): Promise<void> {
    this.#terminated ??= (async () => {
      this.#stopping = true;
      this.#log.info({ graceMs }, "stopping the pod's containers");
      // A setup in flight finishes first, so that attachments it is making are deleted below.
      await this.#setup;
      await Promise.all(this.#slots.map((s) => s.stop(graceMs)));
      await detach(this.#o.node, this.#interfaces);
      this.#interfaces = [];
      this.publish();
      await this.#publishing;
      await rm(this.#o.podDir, { recursive: true, force: true });
    })();
    return this.#terminated;
  }

  #failAll(reason: string, message: string): void {
    this.#log.warn({ reason, message }, "pod cannot run");
    for (const slot of this.#slots) slot.wait(reason, message);
    this.publish();
  }

  /** Writes the pod's status if it changed since the last write; writes are in order, one at a time. */
  publish(): void {
    const previous = (this.pod.status?.conditions ?? []) as unknown as PodCondition[];
    const status = podStatus({
      records: this.#slots.map((s) => s.record),
      // A pod being deleted ends in a terminal phase once its containers have stopped (as kubelets since 1.27).
      restartPolicy: this.#stopping ? "Never" : this.restartPolicy,
      sandboxReady: this.#sandboxReady,
      podIp: this.#o.node.ip,
      hostIp: this.#o.node.ip,
      startTime: this.#startTime,
      previous,
      readinessGates: (this.pod.spec?.readinessGates ?? []).map((g) => g.conditionType),
      now: new Date().toISOString(),
    });
    const { conditions, ...rest } = status as { conditions: PodCondition[] };
    // Transition times alone are no change worth a write.
    const fingerprint = JSON.stringify({
      ...rest,
      conditions: conditions.map((c) => [c.type, c.status, c.message]),
    });
    if (fingerprint === this.#published) return;
    this.#published = fingerprint;
    const { namespace, name } = this.pod.metadata ?? {};
    this.#publishing = this.#publishing.then(async () => {
      try {
        const updated = await this.#o.rest.patch<V1Pod>(
          `/api/v1/namespaces/${namespace}/pods/${name}/status`,
          "merge",
          {
            metadata: { uid: this.uid },
            status,
          },
        );
        this.update(updated);
      } catch (error) {
        // Written again at the next change; a pod already gone has nobody to tell.
        this.#published = "";
        this.#log.debug({ err: (error as Error).message }, "pod status not written");
      }
    });
  }
}

/** One container of a pod: its process, restarts and readiness. */
class ContainerSlot {
  record: ContainerRecord;
  process: ContainerProcess | undefined;
  readonly #pod: PodRunner;
  readonly #spec: V1Container;
  #timer: NodeJS.Timeout | undefined;
  #generation = 0;

  constructor(pod: PodRunner, spec: V1Container) {
    this.#pod = pod;
    this.#spec = spec;
    this.record = {
      name: spec.name,
      image: spec.image ?? "",
      state: { waiting: { reason: "ContainerCreating" } },
      restartCount: 0,
      ready: false,
    };
    for (const kind of ["livenessProbe", "startupProbe"] as const) {
      if (spec[kind] !== undefined)
        pod.log.warn({ container: spec.name }, `${kind} is not run by the harness (readiness probes are)`);
    }
  }

  wait(reason: string, message?: string): void {
    this.record = {
      ...this.record,
      state: { waiting: { reason, ...(message === undefined ? {} : { message }) } },
    };
  }

  start(): void {
    if (this.#pod.stopping) return;
    const o = this.#pod.options;
    // The kubelet knows the pod's IPs from its sandbox before the API does (status.podIP in the env).
    const ips = {
      podIP: o.node.ip,
      podIPs: [{ ip: o.node.ip }],
      hostIP: o.node.ip,
      hostIPs: [{ ip: o.node.ip }],
    };
    const pod: V1Pod = { ...this.#pod.pod, status: { ...this.#pod.pod.status, ...ips } };
    const imageName = this.#spec.image ?? "";
    try {
      const image = Object.hasOwn(o.images, imageName) ? o.images[imageName] : undefined;
      if (image === undefined) {
        throw new ContainerConfigError(
          "ErrImageNeverPull",
          `image ${imageName} is not one the harness runs (it runs ${Object.keys(o.images).join(", ")})`,
        );
      }
      const service = { host: o.apiServer.host, port: String(o.apiServer.port) };
      const env = containerEnv(pod, this.#spec, image, {
        KUBERNETES_SERVICE_HOST: service.host,
        KUBERNETES_SERVICE_PORT: service.port,
        KUBERNETES_SERVICE_PORT_HTTPS: service.port,
        KUBERNETES_PORT: `tcp://${service.host}:${service.port}`,
        HOSTNAME: pod.metadata?.name ?? "",
      });
      const argv = containerArgv(this.#spec, imageName, image, env);
      const user = runAs(pod, this.#spec);
      void this.#launch(env, argv, user);
    } catch (error) {
      const reason = error instanceof ContainerConfigError ? error.reason : "CreateContainerError";
      this.#pod.log.warn(
        { container: this.#spec.name, reason, err: (error as Error).message },
        "container not started",
      );
      this.wait(reason, (error as Error).message);
      this.#pod.publish();
      this.#timer = setTimeout(() => this.start(), o.backoff.baseMs);
    }
  }

  async #launch(env: Record<string, string>, argv: string[], user: ReturnType<typeof runAs>): Promise<void> {
    const o = this.#pod.options;
    const pod = this.#pod.pod;
    try {
      const { binds, overlays } = await containerMounts(this.#spec, this.#pod.volumes, o.podDir);
      const script = containerScript({
        overlays,
        binds,
        hostname: pod.metadata?.name ?? "pod",
        workingDir: this.#spec.workingDir ?? (o.images[this.#spec.image ?? ""]?.workingDir as string),
        user,
        tools: {
          mount: tool("mount"),
          mkdir: tool("mkdir"),
          hostname: tool("hostname"),
          setpriv: tool("setpriv"),
        },
      });
      if (this.#pod.stopping) return;
      const logFile = join(o.podDir, `${this.#spec.name}-${this.record.restartCount}.log`);
      const container = ContainerProcess.start({ ns: o.node.ns, script, argv, env, logFile });
      this.process = container;
      const generation = ++this.#generation;
      const startedAt = container.startedAt.toISOString();
      const containerID = `harness://${container.pid}`;
      this.record = { ...this.record, state: { running: { startedAt } }, containerID, ready: false };
      this.#pod.log.info(
        { container: this.#spec.name, pid: container.pid, argv, logFile },
        "container started",
      );
      const probe = this.#spec.readinessProbe;
      if (probe === undefined) this.record.ready = true;
      else this.#probe(new ProbeTracker(probe), generation, env, user);
      this.#pod.publish();
      const exit = await container.exited;
      if (generation !== this.#generation) return;
      this.#generation++;
      clearTimeout(this.#timer);
      const finishedAt = exit.at.toISOString();
      this.record = {
        ...this.record,
        ready: false,
        state: terminatedState(exit, startedAt, finishedAt, containerID),
      };
      this.#pod.log.info({ container: this.#spec.name, pid: container.pid, ...exit }, "container exited");
      if (this.#pod.stopping) {
        this.#pod.publish();
        return;
      }
      const delay = restartDelayMs(
        this.#pod.restartPolicy,
        exit.exitCode,
        this.record.restartCount,
        exit.at.getTime() - container.startedAt.getTime(),
        o.backoff,
      );
      if (delay !== undefined) {
        this.record = {
          ...this.record,
          lastState: this.record.state,
          restartCount: this.record.restartCount + 1,
          state:
            delay === 0
              ? { waiting: { reason: "ContainerCreating" } }
              : {
                  waiting: {
                    reason: "CrashLoopBackOff",
                    message: `back-off ${Math.round(delay / 1000)}s restarting failed container=${this.#spec.name} pod=${pod.metadata?.name}`,
                  },
                },
        };
        this.#timer = setTimeout(() => this.start(), delay);
      }
      this.#pod.publish();
    } catch (error) {
      this.#pod.log.warn(
        { container: this.#spec.name, err: (error as Error).message },
        "container could not start",
      );
      this.wait("CreateContainerError", (error as Error).message);
      this.#pod.publish();
      if (!this.#pod.stopping) this.#timer = setTimeout(() => this.start(), o.backoff.baseMs);
    }
  }

  #probe(
    tracker: ProbeTracker,
    generation: number,
    env: Record<string, string>,
    user: ReturnType<typeof runAs>,
  ): void {
    const probe = this.#spec.readinessProbe;
    const container = this.process;
    if (probe === undefined || container === undefined) return;
    const once = async () => {
      if (generation !== this.#generation || this.#pod.stopping) return;
      const result = await probeOnce(
        probe,
        { podIp: this.#pod.options.node.ip, pid: container.pid, env, user, ports: this.#spec.ports ?? [] },
        tracker.timeoutMs,
      );
      if (generation !== this.#generation || this.#pod.stopping) return;
      const ready = tracker.record(result.ok);
      if (ready !== this.record.ready) {
        this.#pod.log.info({ container: this.#spec.name, ready, probe: result.detail }, "readiness changed");
        this.record = { ...this.record, ready };
        this.#pod.publish();
      } else if (!result.ok) {
        this.#pod.log.debug({ container: this.#spec.name, probe: result.detail }, "readiness probe failed");
      }
      this.#timer = setTimeout(() => void once(), tracker.periodMs);
    };
    this.#timer = setTimeout(() => void once(), tracker.initialDelayMs);
  }

  /** Ends the container: SIGTERM, SIGKILL after `graceMs`; no restart follows. */
  async stop(graceMs: number): Promise<void> {
    clearTimeout(this.#timer);
    if (this.process?.running) await this.process.stop(graceMs);
    clearTimeout(this.#timer);
  }
}
