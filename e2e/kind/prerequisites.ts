// Whether `npm run e2e:kind` can run here: a container runtime that answers
// (`docker info`, not just a docker CLI), kind at a version whose configs
// and `kind load` it uses, kubectl and helm. One line says what is missing
// and how to get it; the caller prints it and skips.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/** kind's v1alpha4 config with kubeadmConfigPatches, `kind load docker-image`, KIND_EXPERIMENTAL_DOCKER_NETWORK. */
export const MIN_KIND = [0, 20, 0] as const;
export const NEEDS = `needs docker (a running engine), kind >= ${MIN_KIND.join(".")}, kubectl and helm 3 — see README "Running on kind"`;

export interface Tool {
  name: string;
  argv: string[];
}

export const TOOLS: readonly Tool[] = [
  { name: "docker", argv: ["docker", "info", "--format", "{{.ServerVersion}}"] },
  { name: "kind", argv: ["kind", "version"] },
  { name: "kubectl", argv: ["kubectl", "version", "--client"] },
  { name: "helm", argv: ["helm", "version", "--short"] },
];

/** `kind v0.27.0 go1.23.6 linux/amd64` → [0, 27, 0] */
export function kindVersion(text: string): [number, number, number] | undefined {
  const match = /\bv(\d+)\.(\d+)\.(\d+)/.exec(text);
  return match === null ? undefined : [Number(match[1]), Number(match[2]), Number(match[3])];
}

export function atLeast(version: readonly number[], min: readonly number[]): boolean {
  for (let i = 0; i < min.length; i++) {
    const v = version[i] ?? 0;
    const m = min[i] ?? 0;
    if (v !== m) return v > m;
  }
  return true;
}

/** The first line of why a tool failed: its stderr's, else the error's own. */
export function firstLine(error: unknown): string {
  const e = error as { code?: unknown; stderr?: string; message?: string };
  if (e.code === "ENOENT") return "not found on PATH";
  const text = (e.stderr ?? "").trim() || (e.message ?? String(error));
  return (
    text
      .split("\n")
      .map((l) => l.trim())
      .find((l) => l !== "") ?? text
  );
}

/** Why e2e:kind cannot run here (one line, for `e2e:kind skipped: <it>`), or undefined when it can. */
export async function missingPrerequisite(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const problems: string[] = [];
  for (const tool of TOOLS) {
    try {
      const { stdout } = await run(tool.argv[0] as string, tool.argv.slice(1), { env, timeout: 30_000 });
      if (tool.name === "kind") {
        const version = kindVersion(stdout);
        if (version === undefined || !atLeast(version, MIN_KIND))
          problems.push(`kind is ${stdout.trim() || "of no version"}, older than ${MIN_KIND.join(".")}`);
      }
    } catch (error) {
      const what =
        tool.name === "docker" ? "no container runtime answers (docker info failed" : `${tool.name} failed (`;
      problems.push(`${what}${tool.name === "docker" ? ": " : ""}${firstLine(error)})`);
    }
  }
  return problems.length === 0 ? undefined : `${problems.join("; ")}; ${NEEDS}`;
}
