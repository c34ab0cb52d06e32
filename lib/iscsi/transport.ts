// The interface between the iSCSI engine and a transport (TCP streams, iSER over RDMA).
// LIO's `iscsit_transport` is the model: the engine owns the protocol (login, sequence
// numbers, tasks, PDU building); the transport moves bytes. Two data-movement operations
// are optional because that is where the transports differ:
//   - TCP leaves them out: the engine moves Data-In as Data-In PDUs and obtains Data-Out
//     with R2T + Data-Out PDUs, all through `sendPdu` and the receive path.
//   - iSER implements them: Data-In is an RDMA WRITE to the initiator's read STag, Data-Out
//     an RDMA READ from its write STag (RFC 7145 §7.3); the SCSI Response still goes by
//     `sendPdu` (a SEND).
// Immediate and unsolicited data always arrive as PDUs on both transports.

import type { IoDone } from '../scsi/types.js';
import type { TransportKind } from '../common/transports.js';
import type { OperationalParams } from './params.js';
import type { RxPdu } from './pdu.js';

/** What the engine tells a transport about one SCSI task when asking it to move data. */
export interface TaskRef {
  readonly itt: number;
  readonly lun: bigint;
  /** Expected data transfer length (for bidirectional commands: of the write part). */
  readonly expectedLength: number;
  /** Whatever the transport attached to the SCSI Command PDU (iSER: the STags and VAs). */
  readonly transportContext: unknown;
  /**
   * Bytes that arrived unsolicited (immediate data + unsolicited Data-Out, §4.2.5.2). iSER's
   * write base offset addresses the data after them (RFC 7145 §9.2; the Linux initiator
   * advertises its buffer + this many bytes).
   */
  readonly unsolicitedLength: number;
}

export interface IscsiTransport {
  /** "tcp" or "iser" (lib/common/transports.ts): for status output, metrics and TargetAddress lists. */
  readonly kind: TransportKind;
  /** True for iSER: the engine may answer RDMAExtensions=Yes (RFC 7145 §6.2); TCP: false. */
  readonly rdma: boolean;
  /**
   * sendPdu copies the BHS before it returns (iSER into a registered send slot, TCP into
   * its staging buffer): the caller may build the next one in the same memory.
   */
  readonly copiesBhs?: boolean;
  /** Whether CRC32C header/data digests can be used (iSER: never, RFC 7145 §6.2). */
  readonly digests: boolean;
  /**
   * Largest data segment this transport can receive in one PDU, if it has a fixed limit
   * (iSER: its receive buffer size, declared as TargetRecvDataSegmentLength, RFC 7145 §6.3).
   */
  readonly recvDataSegmentLimit?: number;
  /** Largest data segment this transport can send in one PDU (iSER: its send buffer size). */
  readonly sendDataSegmentLimit?: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;

  /**
   * Called once by the engine before any PDU is delivered. The transport starts reading
   * only after this.
   */
  attach(sink: TransportSink): void;

  /**
   * Queue one PDU: `bhs` (48 bytes, already filled), optional AHS, and the data segment as
   * one or more views which the transport pads (and digests where negotiated). Returns
   * undefined when the transport no longer needs the views, or a promise that settles no
   * earlier than that; views must stay unchanged until then. TCP keeps them while it
   * batches the responses to one received chunk, or while the kernel's buffer is full.
   * iSER copies them at once (into a send slot, or a buffer of its own while its ring is
   * full; such a PDU's promise settles when it is posted). This is not flow control: that
   * is `TransportSink.sendQueueFull`.
   */
  sendPdu(bhs: Uint8Array, data?: Uint8Array | readonly Uint8Array[], ahs?: Uint8Array): Promise<void> | undefined;

  /**
   * Optional (iSER): move `from` to the initiator's buffer at byte `offset` of the task's
   * read data; `done` once `from` may be reused (maybe before this returns).
   */
  deliverDataIn?(task: TaskRef, from: Uint8Array, offset: number, done: IoDone): void;
  /** Optional (iSER): fetch `into.length` bytes at byte `offset` of the task's write data; `done` once they are in `into`. */
  obtainDataOut?(task: TaskRef, into: Uint8Array, offset: number, done: IoDone): void;

  /**
   * The login succeeded: the next PDU `sendPdu` gets is the final Login Response (T=1,
   * NSG=Full Feature Phase, status 0). A transport that must be ready for Full Feature
   * Phase before the initiator can answer it gets ready here (iSER posts its whole receive
   * ring, as LIO's isert_put_login_tx and tgt's ep_login_complete do); TCP has nothing to do.
   */
  loginComplete(): void;

  /**
   * Login finished: the final Login Response has been queued by `sendPdu`, and every PDU
   * after it in either direction uses `params` (digests for TCP; message sizes for iSER).
   * Called synchronously from within `TransportSink.receive`, so a framer can switch
   * before it parses the next PDU.
   */
  enterFullFeature(params: OperationalParams): void;

  /** Flow control: stop / restart delivering received PDUs (TCP: pause the socket). */
  pauseReceive(): void;
  resumeReceive(): void;

  /**
   * Close: flush what was queued, then close. `abort` closes at once (protocol errors at
   * ERL 0 drop the connection, RFC 7143 §7.1.4). The transport then calls `sink.closed`.
   */
  close(abort?: boolean): void;
}

/**
 * What a transport's data movement fails with once its connection is ending: the task just
 * ends (no response can reach the initiator; the connection's cleanup follows), not news.
 */
export class TransportClosedError extends Error {
  readonly code = 'TRANSPORT_CLOSED';
}

/** How the transport hands received PDUs to the engine (implemented by IscsiConnection). */
export interface TransportSink {
  /**
   * The header (BHS + AHS) of a PDU has arrived (and its digest checked). Returns where
   * its data segment should land, so Data-Out goes straight into the task's buffer (which
   * may be the LUN's memory), or undefined for "hand me the segment as it comes".
   * `arrived`: the whole segment is already in the transport's memory, which stays put
   * until receive() returns; undefined then means "lend me a view of it" (the engine
   * copies what it keeps past receive()), else "give me a fresh buffer". Must not throw.
   */
  dataDestination(bhs: Uint8Array, dataLength: number, arrived: boolean): Uint8Array | undefined;
  /** A complete PDU (digests checked). `context` is transport-private (iSER header). Must not throw. */
  receive(pdu: RxPdu, context?: unknown): void;
  /**
   * Flow control: the transport's send queue went over its limit (`full`), or back under it.
   * While it is full the engine stops reading (pauseReceive), so a reader that does not
   * read its responses cannot make us queue without bound. Must not throw.
   */
  sendQueueFull(full: boolean): void;
  /** Header digest mismatch: at ERL 0 the connection is dropped (RFC 7143 §7.8). */
  headerDigestError(): void;
  /** Data digest mismatch on the PDU with this BHS (RFC 7143 §7.8). */
  dataDigestError(bhs: Uint8Array): void;
  /** Lengths that cannot be framed (RFC 7143 §7.1.4 "format error"); the transport closes after. */
  framingError(reason: string): void;
  /** The transport is closed (peer closed, error, or our close). Called once. */
  closed(error?: Error): void;
}

/** "10.0.0.1:3260", "[fe80::1]:3260". */
export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
