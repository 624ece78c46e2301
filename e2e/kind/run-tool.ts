// A tool run to its end with its output captured: kubectl, docker, kind,
// helm. Its input, if any, on stdin; a failure throws with the tool's own
// stderr, unless the caller asks for the result whatever it is.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { KubectlResult } from "../scenarios/chaos-cluster.ts";

const run = promisify(execFile);

export interface ToolOptions {
  input?: string;
  allowFailure?: boolean;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Runs a tool; throws with its stderr unless allowFailure. */
export async function runTool(
  file: string,
  args: readonly string[],
  o: ToolOptions = {},
): Promise<KubectlResult> {
  const child = run(file, [...args], {
    maxBuffer: 64 * 1024 * 1024,
    timeout: o.timeoutMs ?? 600_000,
    ...(o.env === undefined ? {} : { env: o.env }),
  });
  if (o.input !== undefined) child.child.stdin?.end(o.input);
  try {
    const { stdout, stderr } = await child;
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number | string; stdout?: string; stderr?: string; message: string };
    const result = {
      code: typeof e.code === "number" ? e.code : 1,
      stdout: e.stdout ?? "",
      stderr: e.stderr ?? e.message,
    };
    if (o.allowFailure) return result;
    throw new Error(`${file} ${args.join(" ")} failed (${e.code}): ${result.stderr.trim()}`);
  }
}
