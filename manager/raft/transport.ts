// How Raft messages travel between managers. The core only produces and consumes Message values;
// an adapter carries them (mutual-TLS WebSockets in production, a simulated network in tests).
import type { Message, NodeId } from './types.ts';

export interface RaftTransport {
  /** Best effort and non-blocking: messages may be dropped (Raft retries), never reordered per peer. */
  send(messages: Message[]): void;
  /** Registers the single handler for inbound messages (already authenticated and decoded). */
  onMessage(handler: (message: Message) => void): void;
  /**
   * Registers the handler for evidence that a peer's process is not running (a dial refused while no
   * connection to it is open). Optional: a transport without such evidence leaves failover to timeouts.
   */
  onPeerGone?(handler: (peer: NodeId) => void): void;
  /** Tells the transport where a peer lives (URL like wss://127.0.0.1:2377). */
  addPeer(id: NodeId, url: string): void;
  removePeer(id: NodeId): void;
  close(): Promise<void>;
}
