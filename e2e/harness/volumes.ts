// The kubelet's volume manager, for the volume kinds the harness's pods use:
//   hostPath  — a directory of the node's own root (<harness>/nodes/<node>/…),
//               so pods on one node share it and pods on others do not;
//   projected — the service account token (from the TokenRequest API, bound
//               to the pod), the cluster's CA (ConfigMap kube-root-ca.crt) and
//               downward API files: what the ServiceAccount admission plugin
//               adds as kube-api-access-*, so in-cluster config works;
//   configMap, emptyDir.
// Then where each container sees them: bind mounts at its volumeMounts'
// paths, made in its own mount namespace (pod-spec.ts writes the script). A
// mount path with no directory on this machine is made inside an overlay of
// its nearest existing ancestor, so the host's filesystem is never changed.
import { existsSync, realpathSync } from "node:fs";
import { mkdir, stat, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join, normalize, relative } from "node:path";
import type { V1Container, V1Pod, V1Volume } from "@kubernetes/client-node";
import type { KubeRest } from "../../operator/src/framework/kube-rest.ts";
import { type BindMount, ContainerConfigError, fieldRefValue, type Overlay, outermost } from "./pod-spec.ts";

/** kubelet's default file mode for projected, configMap and secret volumes (0644). */
const DEFAULT_MODE = 0o644;

export interface VolumeContext {
  rest: KubeRest;
  pod: V1Pod;
  /** The node's root directory: hostPath /x is <nodeRoot>/x. */
  nodeRoot: string;
  /** The pod's own directory (volumes, overlays, logs). */
  podDir: string;
}

/** Makes every volume of the pod a directory and returns each volume's directory by name. */
export async function prepareVolumes(ctx: VolumeContext): Promise<Map<string, string>> {
  const dirs = new Map<string, string>();
  for (const volume of ctx.pod.spec?.volumes ?? []) dirs.set(volume.name, await prepareVolume(ctx, volume));
  return dirs;
}

async function prepareVolume(ctx: VolumeContext, volume: V1Volume): Promise<string> {
  const own = join(ctx.podDir, "volumes", volume.name);
  if (volume.hostPath !== undefined) return hostPath(ctx.nodeRoot, volume.name, volume.hostPath);
  if (volume.emptyDir !== undefined) {
    await mkdir(own, { recursive: true, mode: 0o777 });
    return own;
  }
  if (volume.projected !== undefined || volume.configMap !== undefined) {
    await mkdir(own, { recursive: true, mode: 0o755 });
    const mode = volume.projected?.defaultMode ?? volume.configMap?.defaultMode ?? DEFAULT_MODE;
    const sources = volume.projected?.sources ?? [{ configMap: volume.configMap }];
    for (const source of sources) {
      if (source.serviceAccountToken !== undefined) {
        const t = source.serviceAccountToken;
        await writeFile(join(own, t.path), await serviceAccountToken(ctx, t.audience, t.expirationSeconds), {
          mode,
        });
      } else if (source.configMap !== undefined) {
        const name = source.configMap.name ?? "";
        const data = await configMapData(ctx, name, source.configMap.optional === true);
        const items =
          source.configMap.items ?? Object.keys(data).map((key) => ({ key, path: key, mode: undefined }));
        for (const item of items) {
          if (data[item.key] === undefined)
            throw new ContainerConfigError(
              "FailedMount",
              `volume ${volume.name}: ConfigMap ${name} has no key ${item.key}`,
            );
          await writeInside(own, item.path, data[item.key] as string, item.mode ?? mode);
        }
      } else if (source.downwardAPI !== undefined) {
        for (const item of source.downwardAPI.items ?? []) {
          if (item.fieldRef === undefined)
            throw new ContainerConfigError(
              "FailedMount",
              `volume ${volume.name}: only fieldRef downward API items are supported`,
            );
          await writeInside(
            own,
            item.path,
            fieldRefValue(ctx.pod, item.fieldRef.fieldPath),
            item.mode ?? mode,
          );
        }
      } else {
        const kind = Object.keys(source)[0] ?? "source";
        throw new ContainerConfigError(
          "FailedMount",
          `volume ${volume.name}: projected ${kind} is not supported by the harness`,
        );
      }
    }
    return own;
  }
  const kind = Object.keys(volume).find((k) => k !== "name") ?? "unknown";
  throw new ContainerConfigError(
    "FailedMount",
    `volume ${volume.name}: ${kind} volumes are not supported by the harness`,
  );
}

async function hostPath(
  nodeRoot: string,
  name: string,
  spec: NonNullable<V1Volume["hostPath"]>,
): Promise<string> {
  if (!isAbsolute(spec.path))
    throw new ContainerConfigError("FailedMount", `volume ${name}: hostPath ${spec.path} is not absolute`);
  const dir = join(nodeRoot, normalize(spec.path));
  const type = spec.type ?? "";
  if (type === "" || type === "DirectoryOrCreate") {
    await mkdir(dir, { recursive: true, mode: 0o755 });
  } else if (type === "Directory") {
    const found = await stat(dir).catch(() => undefined);
    if (!found?.isDirectory())
      throw new ContainerConfigError(
        "FailedMount",
        `volume ${name}: hostPath type check failed: ${spec.path} is not a directory`,
      );
  } else if (type === "FileOrCreate") {
    await mkdir(dirname(dir), { recursive: true, mode: 0o755 });
    await writeFile(dir, "", { flag: "a", mode: 0o644 });
  } else {
    throw new ContainerConfigError(
      "FailedMount",
      `volume ${name}: hostPath type ${type} is not supported by the harness`,
    );
  }
  return dir;
}

async function serviceAccountToken(
  ctx: VolumeContext,
  audience?: string,
  expirationSeconds?: number,
): Promise<string> {
  const { name, namespace, uid } = ctx.pod.metadata ?? {};
  const account = ctx.pod.spec?.serviceAccountName ?? "default";
  const answer = await ctx.rest.create<{ status: { token: string } }>(
    `/api/v1/namespaces/${namespace}/serviceaccounts/${account}/token`,
    {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenRequest",
      spec: {
        audiences: audience === undefined || audience === "" ? [] : [audience],
        expirationSeconds: expirationSeconds ?? 3_607,
        boundObjectRef: { apiVersion: "v1", kind: "Pod", name, uid },
      },
    },
  );
  return answer.status.token;
}

async function configMapData(
  ctx: VolumeContext,
  name: string,
  optional: boolean,
): Promise<Record<string, string>> {
  try {
    const cm = await ctx.rest.get<{ data?: Record<string, string> }>(
      `/api/v1/namespaces/${ctx.pod.metadata?.namespace}/configmaps/${name}`,
    );
    return cm.data ?? {};
  } catch (error) {
    if (optional) return {};
    throw new ContainerConfigError("FailedMount", `ConfigMap ${name}: ${(error as Error).message}`);
  }
}

async function writeInside(dir: string, path: string, content: string, mode: number): Promise<void> {
  const file = join(dir, normalize(path));
  if (relative(dir, file).startsWith("..") || isAbsolute(path))
    throw new ContainerConfigError("FailedMount", `volume file path ${path} leaves its volume`);
  await mkdir(dirname(file), { recursive: true, mode: 0o755 });
  await writeFile(file, content, { mode });
}

/**
 * A container's bind mounts (volume directory → mount path) and the overlays
 * they need: a mount path that does not exist here gets its nearest existing
 * ancestor overlaid, with upper and work directories in the pod's directory.
 */
export async function containerMounts(
  container: V1Container,
  volumes: ReadonlyMap<string, string>,
  podDir: string,
): Promise<{ binds: BindMount[]; overlays: Overlay[] }> {
  const binds: BindMount[] = [];
  const roots: string[] = [];
  for (const m of container.volumeMounts ?? []) {
    const dir = volumes.get(m.name);
    if (dir === undefined)
      throw new ContainerConfigError(
        "CreateContainerConfigError",
        `volumeMount ${m.name} names no volume of the pod`,
      );
    if (!isAbsolute(m.mountPath))
      throw new ContainerConfigError(
        "CreateContainerConfigError",
        `mountPath ${m.mountPath} is not absolute`,
      );
    const sub = m.subPath ?? "";
    const source = join(dir, normalize(sub));
    if (relative(dir, source).startsWith(".."))
      throw new ContainerConfigError("CreateContainerConfigError", `subPath ${sub} leaves its volume`);
    if (sub !== "") await mkdir(source, { recursive: true });
    const { root, target } = resolveMountPath(m.mountPath);
    if (root !== undefined) roots.push(root);
    binds.push({ source, target, readOnly: m.readOnly === true });
  }
  const overlays: Overlay[] = [];
  for (const [i, dir] of outermost(roots).entries()) {
    if (dir === "/")
      throw new ContainerConfigError(
        "CreateContainerError",
        "a mount path directly under / that does not exist here cannot be made (the harness overlays below /)",
      );
    const base = join(podDir, "overlay", container.name, `${i}`);
    const overlay = { dir, upper: join(base, "upper"), work: join(base, "work") };
    await mkdir(overlay.upper, { recursive: true });
    await mkdir(overlay.work, { recursive: true });
    overlays.push(overlay);
  }
  return { binds, overlays };
}

/** The mount path with its existing part's symlinks resolved; `root` is that part when the rest must be made. */
function resolveMountPath(mountPath: string): { root: string | undefined; target: string } {
  let existing = normalize(mountPath);
  while (!existsSync(existing)) existing = dirname(existing);
  const real = realpathSync(existing);
  const rest = relative(existing, normalize(mountPath));
  return rest === "" ? { root: undefined, target: real } : { root: real, target: join(real, rest) };
}
