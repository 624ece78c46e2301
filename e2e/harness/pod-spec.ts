// What a kubelet and a container runtime make of a pod's spec before a
// process runs, as pure functions: the environment (downward API fieldRefs,
// $(VAR) references), the argv (an image here is a table of local commands),
// the user (securityContext) and the shell script that sets up the
// container's own mount namespace (hostPath and projected volumes bound
// where the pod mounts them) and then execs the process. A spec asking for
// something the harness cannot do gets an error naming it, never a guess.
import type { V1Container, V1Pod } from "@kubernetes/client-node";

/** An image, as the harness runs it: its executables mapped to local commands, its directory and environment. */
export interface Image {
  /** The container's directory unless it sets workingDir (the image's WORKDIR). */
  workingDir: string;
  /** command[0] → the argv that runs it here, e.g. mosaic → [node, …/mosaic.ts]. */
  executables: Record<string, readonly string[]>;
  /** ENTRYPOINT and CMD, for a container that sets no command (or no args). */
  entrypoint?: readonly string[];
  cmd?: readonly string[];
  /** The image's ENV (PATH at least). */
  env: Record<string, string>;
}

export type Images = Record<string, Image>;

/** A container that cannot be started as specified: kubelet's CreateContainerConfigError and kin. */
export class ContainerConfigError extends Error {
  readonly reason: string;

  constructor(reason: string, message: string) {
    super(message);
    this.name = "ContainerConfigError";
    this.reason = reason;
  }
}

/** The value of a downward API fieldRef, as the kubelet resolves it; unknown paths are refused. */
export function fieldRefValue(pod: V1Pod, fieldPath: string): string {
  const keyed = /^metadata\.(labels|annotations)\['([^']*)'\]$/.exec(fieldPath);
  if (keyed !== null) {
    const map = keyed[1] === "labels" ? pod.metadata?.labels : pod.metadata?.annotations;
    return map?.[keyed[2] as string] ?? "";
  }
  const field = Object.hasOwn(FIELD_REFS, fieldPath) ? FIELD_REFS[fieldPath] : undefined;
  if (field === undefined) {
    throw new ContainerConfigError(
      "CreateContainerConfigError",
      `fieldRef ${fieldPath} is not one the harness resolves`,
    );
  }
  return field(pod) ?? "";
}

/** The downward API's plain fields. */
const FIELD_REFS: Record<string, (pod: V1Pod) => string | undefined> = {
  "metadata.name": (pod) => pod.metadata?.name,
  "metadata.namespace": (pod) => pod.metadata?.namespace,
  "metadata.uid": (pod) => pod.metadata?.uid,
  "spec.nodeName": (pod) => pod.spec?.nodeName,
  "spec.serviceAccountName": (pod) => pod.spec?.serviceAccountName,
  "status.podIP": (pod) => pod.status?.podIP,
  "status.hostIP": (pod) => pod.status?.hostIP,
};

/** $(NAME) replaced by its value when NAME is defined, $$ an escaped $, as Kubernetes expands env, command and args. */
export function expandReferences(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (whole, name: string | undefined) => {
    if (name === undefined) return "$";
    return Object.hasOwn(vars, name) ? (vars[name] as string) : whole;
  });
}

/**
 * A container's environment: the image's, then what the kubelet adds (service
 * variables, HOSTNAME), then the container's own in order, each expanded
 * against those before it.
 */
export function containerEnv(
  pod: V1Pod,
  container: V1Container,
  image: Image,
  kubelet: Record<string, string>,
): Record<string, string> {
  if ((container.envFrom ?? []).length > 0)
    throw new ContainerConfigError(
      "CreateContainerConfigError",
      `container ${container.name}: envFrom is not supported by the harness`,
    );
  const env: Record<string, string> = { ...image.env, ...kubelet };
  for (const v of container.env ?? []) {
    if (v.valueFrom === undefined) {
      env[v.name] = expandReferences(v.value ?? "", env);
    } else if (v.valueFrom.fieldRef !== undefined) {
      env[v.name] = fieldRefValue(pod, v.valueFrom.fieldRef.fieldPath);
    } else {
      const kind = Object.keys(v.valueFrom)[0] ?? "valueFrom";
      throw new ContainerConfigError(
        "CreateContainerConfigError",
        `container ${container.name}: env ${v.name} uses ${kind}, which the harness does not resolve`,
      );
    }
  }
  return env;
}

/** The argv to run: the container's command and args (or the image's), with command[0] mapped by the image. */
export function containerArgv(
  container: V1Container,
  imageName: string,
  image: Image,
  env: Record<string, string>,
): string[] {
  const command = container.command ?? image.entrypoint ?? [];
  const args = container.args ?? (container.command === undefined ? (image.cmd ?? []) : []);
  const [first, ...rest] = [...command, ...args].map((a) => expandReferences(a, env));
  if (first === undefined)
    throw new ContainerConfigError(
      "CreateContainerError",
      `container ${container.name}: no command, and image ${imageName} has none`,
    );
  const local = Object.hasOwn(image.executables, first) ? image.executables[first] : undefined;
  if (local === undefined) {
    throw new ContainerConfigError(
      "CreateContainerError",
      `container ${container.name}: image ${imageName} has no executable "${first}" (it has ${Object.keys(image.executables).join(", ")})`,
    );
  }
  return [...local, ...rest];
}

export interface RunAs {
  uid: number;
  gid: number;
  noNewPrivs: boolean;
}

/** The user the process runs as (container securityContext over the pod's), or undefined for root. */
export function runAs(pod: V1Pod, container: V1Container): RunAs | undefined {
  const podContext = pod.spec?.securityContext;
  const own = container.securityContext;
  const uid = own?.runAsUser ?? podContext?.runAsUser;
  const gid = own?.runAsGroup ?? podContext?.runAsGroup ?? uid;
  const nonRoot = own?.runAsNonRoot ?? podContext?.runAsNonRoot ?? false;
  if (nonRoot && (uid === undefined || uid === 0)) {
    throw new ContainerConfigError(
      "CreateContainerConfigError",
      `container ${container.name}: runAsNonRoot, and no non-root runAsUser (the harness's images run as root)`,
    );
  }
  const noNewPrivs = own?.allowPrivilegeEscalation === false;
  if (uid === undefined || uid === 0) return noNewPrivs ? { uid: 0, gid: gid ?? 0, noNewPrivs } : undefined;
  return { uid, gid: gid ?? uid, noNewPrivs };
}

export interface BindMount {
  source: string;
  target: string;
  readOnly: boolean;
}

/** A directory overlaid (lower: itself) so that mount points can be made under it without touching the host. */
export interface Overlay {
  dir: string;
  upper: string;
  work: string;
}

export interface ContainerScript {
  overlays: readonly Overlay[];
  binds: readonly BindMount[];
  hostname: string;
  workingDir: string;
  user: RunAs | undefined;
  /** Absolute paths of mount, mkdir, hostname and setpriv. */
  tools: Record<"mount" | "mkdir" | "hostname" | "setpriv", string>;
}

/** Single-quoted for sh. */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * The script `sh -c` runs inside the container's fresh mount and UTS
 * namespaces: overlays, then bind mounts (parents first; read-only ones
 * remounted so), the hostname, the working directory, then exec of "$@" as
 * the container's user.
 */
export function containerScript(s: ContainerScript): string {
  const q = shellQuote;
  const lines = ["set -e"];
  for (const o of [...s.overlays].sort((a, b) => a.dir.length - b.dir.length)) {
    for (const path of [o.dir, o.upper, o.work])
      if (/[,:]/.test(path))
        throw new Error(`overlay path ${path} has a comma or colon, which mount options cannot hold`);
    lines.push(
      `${q(s.tools.mount)} -t overlay overlay -o ${q(`lowerdir=${o.dir},upperdir=${o.upper},workdir=${o.work}`)} ${q(o.dir)}`,
    );
  }
  for (const b of [...s.binds].sort((a, z) => a.target.length - z.target.length)) {
    lines.push(`[ -e ${q(b.target)} ] || ${q(s.tools.mkdir)} -p ${q(b.target)}`);
    lines.push(`${q(s.tools.mount)} --bind ${q(b.source)} ${q(b.target)}`);
    if (b.readOnly) lines.push(`${q(s.tools.mount)} -o remount,bind,ro ${q(b.target)}`);
  }
  lines.push(`${q(s.tools.hostname)} ${q(s.hostname)}`);
  lines.push(`cd ${q(s.workingDir)}`);
  const u = s.user;
  const setpriv =
    u === undefined
      ? ""
      : [
          q(s.tools.setpriv),
          ...(u.uid === 0 ? [] : [`--reuid=${u.uid}`, `--regid=${u.gid}`, "--clear-groups"]),
          ...(u.noNewPrivs ? ["--no-new-privs"] : []),
          "-- ",
        ].join(" ");
  lines.push(`exec ${setpriv}"$@"`);
  return lines.join("\n");
}

/** Of directories to overlay, the outermost ones (one overlay already covers what is below it). */
export function outermost(dirs: readonly string[]): string[] {
  const unique = [...new Set(dirs)].sort((a, b) => a.length - b.length);
  return unique.filter((d, i) => !unique.slice(0, i).some((o) => o === "/" || d.startsWith(`${o}/`)));
}
