// A TCP proxy in front of one agent address that can be frozen: from then on
// every byte in either direction is dropped and every connection stays open,
// and new connections are accepted but carried nowhere. That is what a dead
// NIC looks like to the other end (packets vanish, nothing is refused or
// reset), on real sockets, without network namespaces.
import { connect, createServer, type Server, type Socket } from "node:net";

export class FreezableProxy {
  readonly address: string;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #frozen = false;

  private constructor(server: Server, address: string) {
    this.#server = server;
    this.address = address;
  }

  /** Listens on a free port of `host` and carries each connection to `target` ("host:port"). */
  static async start(target: string, host = "127.0.0.1"): Promise<FreezableProxy> {
    const at = target.lastIndexOf(":");
    const to = { host: target.slice(0, at), port: Number(target.slice(at + 1)) };
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    const proxy = new FreezableProxy(server, `${host}:${(server.address() as { port: number }).port}`);
    server.on("connection", (client) => proxy.#carry(client, to));
    return proxy;
  }

  get frozen(): boolean {
    return this.#frozen;
  }

  /** The NIC dies: nothing passes any more, and nothing says so. */
  freeze(): void {
    this.#frozen = true;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #carry(client: Socket, to: { host: string; port: number }): void {
    this.#track(client);
    if (this.#frozen) return; // accepted, then silence
    const upstream = connect(to);
    this.#track(upstream);
    const pipe = (from: Socket, into: Socket) => {
      from.on("data", (bytes: Buffer) => {
        if (!this.#frozen) into.write(bytes);
      });
      from.on("close", () => {
        if (!this.#frozen) into.destroy();
      });
    };
    pipe(client, upstream);
    pipe(upstream, client);
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => this.#sockets.delete(socket));
  }
}
