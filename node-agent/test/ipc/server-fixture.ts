// An IpcServer on a real FileHandler (agent 0 of an in-process cluster of
// three) in a fresh temporary directory, for test files that run application
// processes against it; stop() ends the peers, the server and the cluster and
// removes the directory.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Agent } from "../../src/agent.ts";
import { IpcServer, type IpcServerOptions } from "../../src/ipc/ipc-server.ts";
import { type InProcessCluster, startInProcessCluster } from "../helpers/in-process-cluster.ts";
import { killPeers } from "./children.ts";

export interface ServerFixture {
  cluster: InProcessCluster;
  server: IpcServer;
  root: string;
  dir: string;
  stop(): Promise<void>;
}

export async function startServerFixture(
  name: string,
  options: Omit<IpcServerOptions, "dir" | "files">,
): Promise<ServerFixture> {
  const cluster = await startInProcessCluster(3);
  const root = mkdtempSync(join(tmpdir(), `mosaic-ipc-${name}-`));
  const dir = join(root, "ipc");
  const server = IpcServer.start({ dir, files: (cluster.agents[0] as Agent).files, ...options });
  const fixture: ServerFixture = {
    cluster,
    server,
    root,
    dir,
    async stop() {
      await killPeers();
      await fixture.server.close();
      await cluster.stop();
      rmSync(root, { recursive: true, force: true });
    },
  };
  return fixture;
}
