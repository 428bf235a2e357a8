/**
 * The host side of the in-zone agent: its protocol (native/agent/PROTOCOL.md), a client over
 * any connected Duplex, and the agent binary for a zone's initramfs.
 */
export { AgentClient, type ExecOptions, type LaunchOptions, type WriteFileOptions, type FileData } from './client';
export { AgentProcess } from './process';
export { EventSubscription } from './requests';
export { AgentSession, type ConnectOptions } from './session';
export { AgentDisconnectedError, AgentProtocolError, AgentRequestError, type AgentErrorKind } from './errors';
export { agentBinary, agentArtifact } from './binary';
export { watchAgentLiveness, livenessSettings, DEFAULT_LIVENESS, type LivenessSettings } from './liveness';
export {
  PROTOCOL_VERSION,
  type DirEntry,
  type ExitStatus,
  type FileStat,
  type FileType,
  type GuestMetrics,
  type MainExitEvent,
  type ProcessInfo,
  type PsiFigures,
} from './protocol';
