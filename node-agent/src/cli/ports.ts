// Before a local cluster starts: is every address it will listen on free?
// Asking the kernel is the only reliable test; an agent that finds its port
// taken would otherwise die with the reason buried in its log.
import { createServer } from "node:net";

export interface Endpoint {
  /** host:port */
  address: string;
  /** What listens there, for the message: "node-1 channel B". */
  label: string;
}

export async function assertAddressesFree(endpoints: Endpoint[]): Promise<void> {
  for (const endpoint of endpoints) {
    const problem = await listenProblem(endpoint.address);
    if (problem === undefined) continue;
    const [host, port] = splitAddress(endpoint.address);
    if (problem === "EADDRINUSE") {
      throw new Error(
        `port ${port} on ${host} (${endpoint.label}) is already in use; pick other ports with --base-port`,
      );
    }
    if (problem === "EADDRNOTAVAIL") {
      throw new Error(
        `cannot listen on ${host} (${endpoint.label}): the address is not configured on this machine` +
          ` (on macOS: sudo ifconfig lo0 alias ${host})`,
      );
    }
    throw new Error(`cannot listen on ${endpoint.address} (${endpoint.label}): ${problem}`);
  }
}

/** undefined when the address can be bound, else the error code. */
function listenProblem(address: string): Promise<string | undefined> {
  const [host, port] = splitAddress(address);
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

function splitAddress(address: string): [string, number] {
  const colon = address.lastIndexOf(":");
  return [address.slice(0, colon), Number(address.slice(colon + 1))];
}
