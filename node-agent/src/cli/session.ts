// Runs a command's work against the first agent that answers and always
// closes the connection, so the process can exit on its own.
import { type Connection, connect, type TargetOptions } from "./target.ts";

export async function withAgent<T>(target: TargetOptions, work: (c: Connection) => Promise<T>): Promise<T> {
  const connection = await connect(target);
  try {
    return await work(connection);
  } finally {
    connection.client.close();
  }
}

export function printLine(line = ""): void {
  process.stdout.write(`${line}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** `mosaic ls | head`: a reader that stops early ends the command quietly, without a stack trace. */
export function exitQuietlyWhenStdoutCloses(): void {
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(0);
    throw error;
  });
}
