// SRP login over RDMA/CM (SRP r16a §5.4, §6.2–§6.4): the initiator's srp_login_req_rdma
// arrives in the CONNECT_REQUEST private data; the answer is SRP_LOGIN_RSP in the accept's
// private data or SRP_LOGIN_REJ in the reject's. This file decides, the channel acts.
//
// What is checked, in LIO srpt's order where it has one: the IU itself, the IU length the
// initiator wants to send (at least 64, at most what we receive; ib_srp asks 8260 with
// immediate data on), the buffer formats (direct and/or indirect), the multichannel action,
// the target port identifier (id_ext ‖ ioc_guid), then the ACL.

import {
  BufFormat,
  CMD_LENGTH,
  IMM_DESC_LENGTH,
  LOGIN_REQ_RDMA_LENGTH,
  LoginRejReason,
  LoginReqFlags,
  LoginRspFlags,
  type SrpIuError,
  decodeLoginReqRdma,
  encodeLoginRej,
  encodeLoginRsp,
  portIdHex,
  type LoginReq,
} from './iu.js';

export interface LoginPolicy {
  /** The target port identifier initiators must name (16 bytes). */
  targetPortId: Uint8Array;
  /** Largest SRP_CMD IU we take (our receive slot size limit). */
  maxItIuLen: number;
  /** Largest IU we send (SRP_RSP with sense). */
  maxTiIuLen: number;
  /** Credits granted at login (= receive depth for requests). */
  credits: number;
  /** Whether SRP-2 immediate data is offered. */
  immediateData: boolean;
}

export interface LoginAccepted {
  ok: true;
  req: LoginReq;
  initiatorPort: string;
  targetPort: string;
  itIuLen: number;
  tiIuLen: number;
  credits: number;
  bufFmt: number;
  /** Where immediate data starts in an SRP_CMD; 0 when not negotiated. */
  immOffset: number;
  multichannel: boolean;
}

export interface LoginRefused {
  ok: false;
  reason: number;
  why: string;
  /** Tag and formats to echo when the request decoded far enough. */
  req?: LoginReq;
}

export type LoginDecision = LoginAccepted | LoginRefused;

const refuse = (reason: number, why: string, req?: LoginReq): LoginRefused => (req ? { ok: false, reason, why, req } : { ok: false, reason, why });

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Checks a login request's own fields; the ACL and channel limits are the target's to check after. */
export function evaluateLogin(privateData: Uint8Array | undefined, p: LoginPolicy): LoginDecision {
  if (!privateData || privateData.length < LOGIN_REQ_RDMA_LENGTH) {
    return refuse(
      LoginRejReason.UnableToEstablish,
      `connect request private data of ${privateData?.length ?? 0} bytes, shorter than srp_login_req_rdma (${LOGIN_REQ_RDMA_LENGTH})`,
    );
  }
  let req: LoginReq;
  try {
    req = decodeLoginReqRdma(privateData, LOGIN_REQ_RDMA_LENGTH);
  } catch (e) {
    return refuse(LoginRejReason.UnableToEstablish, (e as SrpIuError).message);
  }
  if (req.reqItIuLen < 64) {
    return refuse(LoginRejReason.ItIuLengthTooLarge, `REQUESTED MAXIMUM INITIATOR TO TARGET IU LENGTH ${req.reqItIuLen} is below 64 (SRP r16a §6.2)`, req);
  }
  if (req.reqItIuLen > p.maxItIuLen) {
    return refuse(
      LoginRejReason.ItIuLengthTooLarge,
      `REQUESTED MAXIMUM INITIATOR TO TARGET IU LENGTH ${req.reqItIuLen} exceeds ${p.maxItIuLen} (ib_srp: max_it_iu_size=)`,
      req,
    );
  }
  const bufFmt = req.reqBufFmt & (BufFormat.Direct | BufFormat.Indirect);
  if (bufFmt === 0) {
    return refuse(
      LoginRejReason.UnsupportedDescriptorFormat,
      `REQUIRED BUFFER FORMATS 0x${req.reqBufFmt.toString(16)} names neither direct nor indirect descriptors`,
      req,
    );
  }
  const action = req.reqFlags & LoginReqFlags.MultichannelMask;
  if (action > LoginReqFlags.MultichannelMulti) {
    return refuse(LoginRejReason.UnableToEstablish, `MULTI-CHANNEL ACTION ${action} is reserved (SRP r16a table 11)`, req);
  }
  if (!equal(req.targetPortId, p.targetPortId)) {
    return refuse(
      LoginRejReason.UnableToAssociate,
      `TARGET PORT IDENTIFIER ${portIdHex(req.targetPortId)} is not this target's ${portIdHex(p.targetPortId)} (id_ext ‖ ioc_guid)`,
      req,
    );
  }
  // Immediate data (SRP-2): the data must start after the fixed part and the descriptor.
  let immOffset = 0;
  if (
    p.immediateData &&
    req.reqFlags & LoginReqFlags.ImmediateRequested &&
    req.immDataOffset >= CMD_LENGTH + IMM_DESC_LENGTH &&
    req.immDataOffset < req.reqItIuLen
  ) {
    immOffset = req.immDataOffset;
  }
  return {
    ok: true,
    req,
    initiatorPort: portIdHex(req.initiatorPortId),
    targetPort: portIdHex(req.targetPortId),
    itIuLen: req.reqItIuLen,
    tiIuLen: p.maxTiIuLen,
    credits: p.credits,
    bufFmt,
    immOffset,
    multichannel: action === LoginReqFlags.MultichannelMulti,
  };
}

/** The SRP_LOGIN_RSP for an accepted login; `existing` is what the multichannel action did. */
export function loginResponse(
  a: LoginAccepted,
  existing: LoginRspFlags.NoExistingChannels | LoginRspFlags.ExistingTerminated | LoginRspFlags.ExistingMaintained,
): Buffer {
  const b = Buffer.alloc(64);
  encodeLoginRsp(
    {
      tagLo: a.req.tagLo,
      tagHi: a.req.tagHi,
      reqLimDelta: a.credits,
      maxItIuLen: a.itIuLen,
      maxTiIuLen: a.tiIuLen,
      bufFmt: a.bufFmt,
      rspFlags: existing | (a.immOffset ? LoginRspFlags.ImmediateSupported : 0),
    },
    b,
  );
  return b.subarray(0, 52);
}

/** The SRP_LOGIN_REJ for a refusal (fits any CM reject's private data). */
export function loginReject(r: LoginRefused): Buffer {
  const b = Buffer.alloc(32);
  encodeLoginRej({ tagLo: r.req?.tagLo ?? 0, tagHi: r.req?.tagHi ?? 0, reason: r.reason, bufFmt: BufFormat.Direct | BufFormat.Indirect }, b);
  return b;
}

/** LIO's default service GUID: the device's node GUID as id_ext and as ioc_guid. */
export function defaultTargetPortId(nodeGuidHex: string): Uint8Array {
  const h = nodeGuidHex.replace(/^0x/i, '').replace(/:/g, '').padStart(16, '0');
  const b = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const v = parseInt(h.slice(2 * i, 2 * i + 2), 16);
    b[i] = v;
    b[8 + i] = v;
  }
  return b;
}
