/**
 * The standalone binaries: one table, used by `deno task compile` and by the
 * permission tests, so the grants exist in one place only.
 *
 * Each binary holds exactly the permissions its server needs:
 * - `parley-directory`: network, and read/write of its data location only: the
 *   SQLite file `./parley-directory.db` and the files SQLite keeps beside it
 *   (`-journal`, `-wal`, `-shm`), relative to the directory it runs in
 *   (`--db :memory:` needs none). Pointed at a database elsewhere, it stops
 *   with a permission error.
 * - `parley-crc-node`: network only (a `--log-file` is refused with a logged error; the node runs on).
 * - `parley-channel-server`: network limited to the two addresses a channel
 *   server listens on, `127.0.0.1` (the default) and `0.0.0.0` (every
 *   interface), on any port. Deno's `--allow-net` cannot tell listening from
 *   connecting, so the grant also lets it connect to loopback ports, but to no
 *   other host: no name lookups, no other address (`--host 127.0.0.2` or
 *   `--host ::1` is refused).
 *
 * No binary gets env, run, ffi, sys or unscoped read/write, and all run with
 * `--no-prompt`: a denied operation is an error, never a question.
 *
 * @module
 */

/** The data files the directory may read and write, relative to where it runs. */
export const DIRECTORY_DATA_FILES: readonly string[] = ["", "-journal", "-wal", "-shm"].map((
  suffix,
) => `./parley-directory.db${suffix}`);

/** One standalone binary. */
export interface Binary {
  /** File name of the binary (`.exe` is added on Windows targets). */
  name: string;
  /** The entry point it is compiled from. */
  entry: string;
  /** Its permission flags, exactly as `deno compile` and `deno run` take them. */
  permissions: readonly string[];
}

/** The binaries Parley ships. */
export const BINARIES: readonly Binary[] = [
  {
    name: "parley-directory",
    entry: "servers/directory.ts",
    permissions: [
      "--no-prompt",
      "--allow-net",
      `--allow-read=${DIRECTORY_DATA_FILES.join(",")}`,
      `--allow-write=${DIRECTORY_DATA_FILES.join(",")}`,
    ],
  },
  {
    name: "parley-crc-node",
    entry: "servers/crc_node.ts",
    permissions: ["--no-prompt", "--allow-net"],
  },
  {
    name: "parley-channel-server",
    entry: "servers/channel.ts",
    permissions: ["--no-prompt", "--allow-net=127.0.0.1,0.0.0.0"],
  },
];

/** Every platform `deno compile --target` supports (Deno 2.9). */
export const TARGETS: readonly string[] = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-pc-windows-msvc",
  "aarch64-pc-windows-msvc",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
];
