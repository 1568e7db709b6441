/**
 * Parley: chat protocols, servers and clients for Deno.
 *
 * Protocol codecs are pure (bytes in, messages out); servers and clients are
 * built on them and look like `Deno.serve` (`addr`, `finished`, `shutdown()`,
 * `await using`).
 *
 * @example
 * ```ts
 * import { serveTimestamp } from "./mod.ts";
 * await using server = await serveTimestamp({ port: 0 });
 * console.assert(server.addr.transport === "tcp");
 * ```
 *
 * @module
 */

export * from "./protocols/errors.ts";
export * from "./protocols/frames.ts";
export * from "./protocols/timestamp.ts";
export * from "./protocols/channel.ts";
export * from "./protocols/eurechat.ts";
export * from "./protocols/im.ts";
export * from "./protocols/crc.ts";
export * from "./protocols/crc_router.ts";
export * from "./protocols/names.ts";
export { type Server } from "./net/serve.ts";
export { serveTimestamp, type TimestampOptions } from "./servers/timestamp.ts";
export {
  connectTimestamp,
  type TimestampClient,
  type TimestampClientOptions,
} from "./clients/timestamp.ts";
export { type ChannelServerOptions, serveChannel } from "./servers/channel.ts";
export {
  type ChannelClient,
  type ChannelSessionOptions,
  connectChannel,
  runChannelSession,
} from "./clients/channel.ts";
export {
  type Binding,
  DIRECTORY_DB,
  type DirectoryOptions,
  type DirectoryServer,
  pingPeer,
  serveDirectory,
} from "./servers/directory.ts";
export {
  connectDirectory,
  DirectoryClient,
  DirectoryError,
  type EurechatSessionOptions,
  type PeerEntry,
  type PeerListenerOptions,
  runEurechatSession,
  sendPeerMessage,
  servePeer,
} from "./clients/eurechat.ts";
export { type ImServer, type ImServerOptions, serveIm } from "./servers/im.ts";
export { connectIm, type ImClient, type ImSessionOptions, runImSession } from "./clients/im.ts";
export {
  type CrcHostState,
  CrcJoinRefusedError,
  type CrcNode,
  type CrcNodeOptions,
  type CrcNodeState,
  serveCrcNode,
} from "./servers/crc_node.ts";
export {
  connectCrc,
  type CrcChat,
  CrcClient,
  type CrcClientOptions,
  type CrcStatus,
  type CrcUser,
} from "./clients/crc.ts";
export { type Screen } from "./cli/terminal.ts";
