/**
 * The body every server entry point shares: logging, signals, start, wait.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { Server } from "../net/serve.ts";
import type { ParsedCli } from "./command.ts";
import { setupLogging } from "./logging.ts";
import { exitOnSignal } from "./signals.ts";
import { startIdleMemoryReducer } from "./memory.ts";

/**
 * The body of every server entry point: set up logging from the flags, stop
 * cleanly on SIGINT/SIGTERM (also while starting), start the server, give
 * memory back after bursts ({@link startIdleMemoryReducer}), and wait until
 * it has finished.
 */
export async function runServer(
  values: ParsedCli["values"],
  logger: Logger,
  start: () => Server | Promise<Server>,
): Promise<void> {
  await setupLogging(values);
  const signals = exitOnSignal([], logger);
  const server = await start();
  signals.add(server);
  const reducer = startIdleMemoryReducer();
  try {
    await server.finished;
  } finally {
    reducer.stop();
  }
}
