/**
 * Logging setup for entry points: LogTape, from `--log-level`, `--log-format`
 * and `--log-file`.
 *
 * @module
 */

import {
  configure,
  getConsoleSink,
  getLogger,
  getTextFormatter,
  jsonLinesFormatter,
  type LogLevel,
  type LogRecord,
  type Sink,
  type TextFormatter,
} from "@logtape/logtape";
import { writeAllSync } from "../net/bytes.ts";
import { choiceValue, type ParsedCli } from "./command.ts";

const LEVELS = ["debug", "info", "warning", "error"] as const;

/**
 * Configures LogTape for an entry point from `--log-level` and `--log-format`:
 * records under `["parley", ...]` go to the console as text or JSON lines.
 */
export async function setupLogging(values: ParsedCli["values"]): Promise<void> {
  const level: LogLevel = choiceValue(values["log-level"] ?? "info", "log-level", LEVELS);
  const format = choiceValue(values["log-format"] ?? "pretty", "log-format", ["pretty", "json"]);
  const formatter = format === "json" ? jsonLinesFormatter : getTextFormatter({
    timestamp: "date-time-tz",
    level: "ABBR",
    category: ".",
    value: (v: unknown) => typeof v === "string" ? v : Deno.inspect(v),
  });
  const sinks: Record<string, Sink> = { console: getConsoleSink({ formatter }) };
  let fileProblem: string | undefined;
  if (values["log-file"] !== undefined) {
    try {
      sinks.file = fileSink(String(values["log-file"]), formatter);
    } catch (error) {
      // A log file is a convenience: without permission to write it, log to the console and run on.
      if (
        !(error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied)
      ) {
        throw error;
      }
      fileProblem = `${error.name}: ${error.message}`;
    }
  }
  const names = Object.keys(sinks);
  await configure({
    reset: true,
    sinks,
    loggers: [
      { category: ["parley"], lowestLevel: level, sinks: names },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
    ],
  });
  if (fileProblem) {
    getLogger(["parley"]).error(
      "Cannot write the log file {file}, logging to the console only: {problem}",
      {
        file: values["log-file"],
        problem: fileProblem,
      },
    );
  }
}

/** A sink appending each formatted record to a file (opened once, written synchronously). */
function fileSink(path: string, formatter: TextFormatter): Sink & Disposable {
  const file = Deno.openSync(path, { create: true, append: true });
  const encoder = new TextEncoder();
  const sink = (record: LogRecord) => {
    writeAllSync(file, encoder.encode(formatter(record)));
  };
  return Object.assign(sink, { [Symbol.dispose]: () => file.close() });
}
