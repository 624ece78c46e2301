// The few REST calls the operator makes, on client-node's KubeConfig for
// server, credentials and TLS. The generated API classes choose a patch's
// content type through per-call middleware and reach a custom kind's status
// subresource only through kind-specific methods; a path and a verb say the
// same thing plainly, for every kind alike.
import https from "node:https";
import type { KubeConfig } from "@kubernetes/client-node";

export type PatchType = "merge" | "json" | "apply";

const CONTENT_TYPES: Record<PatchType, string> = {
  merge: "application/merge-patch+json",
  json: "application/json-patch+json",
  // Server-side apply: the body is the whole desired object; `fieldManager` (and `force`) go in the query.
  apply: "application/apply-patch+yaml",
};

/** A refusal from the API server, with its HTTP status and the Status object's reason and message. */
export class KubeError extends Error {
  readonly status: number;
  readonly reason: string;

  constructor(method: string, path: string, status: number, body: string) {
    let reason = "";
    let message = body.slice(0, 500);
    try {
      const parsed = JSON.parse(body) as { reason?: string; message?: string };
      reason = parsed.reason ?? "";
      message = parsed.message ?? message;
    } catch {}
    super(`${method} ${path}: ${status} ${reason}: ${message}`);
    this.name = "KubeError";
    this.status = status;
    this.reason = reason;
  }
}

export function isNotFound(error: unknown): boolean {
  return error instanceof KubeError && error.status === 404;
}

export function isConflict(error: unknown): boolean {
  return error instanceof KubeError && error.status === 409;
}

export class KubeRest {
  readonly #kc: KubeConfig;
  readonly #server: string;

  constructor(kc: KubeConfig) {
    this.#kc = kc;
    const server = kc.getCurrentCluster()?.server;
    if (server === undefined) throw new Error("kubeconfig names no current cluster");
    this.#server = server;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>("GET", path);
  }

  create<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("POST", path, body);
  }

  replace<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("PUT", path, body);
  }

  patch<T>(path: string, type: PatchType, body: unknown): Promise<T> {
    return this.request<T>("PATCH", path, body, CONTENT_TYPES[type]);
  }

  delete<T>(path: string): Promise<T> {
    return this.request<T>("DELETE", path);
  }

  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    contentType = "application/json",
  ): Promise<T> {
    const url = new URL(path, this.#server);
    const options: https.RequestOptions = {
      method,
      headers: { accept: "application/json" },
      timeout: 30_000,
    };
    const payload = body === undefined ? undefined : JSON.stringify(body);
    if (payload !== undefined) {
      // Node sends no body with a DELETE unless its length is given: DeleteOptions would vanish.
      options.headers = {
        ...options.headers,
        "content-type": contentType,
        "content-length": Buffer.byteLength(payload),
      };
    }
    await this.#kc.applyToHTTPSOptions(options);
    return new Promise<T>((resolve, reject) => {
      const request = https.request(url, options, (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve((text === "" ? undefined : JSON.parse(text)) as T);
          else reject(new KubeError(method, path, status, text));
        });
        response.on("error", reject);
      });
      request.on("timeout", () => request.destroy(new Error(`${method} ${path}: timed out`)));
      request.on("error", reject);
      request.end(payload);
    });
  }
}
