// RC queue pairs (created on a CM id, which drives their state transitions) and shared
// receive queues. Work requests arrive as fixed-size records in a caller-supplied
// Uint32Array — no JS object per WR — and are posted as one chain per call.
//
// Send WR record (words):  0 wrIdLo, 1 wrIdHi, 2 opcode (ibv_wr_opcode), 3 sendFlags,
//   4 numSge, 5 immData | invalidateRkey, 6 rkey, 7 reserved, 8 remoteAddrLo,
//   9 remoteAddrHi, then numSge × (addrLo, addrHi, length, lkey).
// Recv WR record (words):  0 wrIdLo, 1 wrIdHi, 2 numSge, 3 reserved, then the SGEs.
// postSend/postRecv(words, count, offsetWords?) post `count` records starting at a word offset.
#pragma once
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "common.h"

namespace rt {

constexpr int kMaxSgePerWr = 32;

class Srq : public Napi::ObjectWrap<Srq>, public Resource {
 public:
  static constexpr Kind kKind = Kind::Srq;
  static Napi::Function Init(Napi::Env env);
  explicit Srq(const Napi::CallbackInfo& info);
  ~Srq() override { Close(); }
  ibv_srq* srq() const { return srq_; }

 private:
  void Release() override;
  Napi::Value PostRecv(const Napi::CallbackInfo& info);
  Napi::Value CloseJs(const Napi::CallbackInfo& info);
  ibv_srq* srq_ = nullptr;
  Napi::ObjectReference pd_;
};

class Qp : public Napi::ObjectWrap<Qp>, public Resource {
 public:
  static constexpr Kind kKind = Kind::Qp;
  static Napi::Function Init(Napi::Env env);
  explicit Qp(const Napi::CallbackInfo& info);
  ~Qp() override { Close(); }

 private:
  void Release() override;
  Napi::Value PostSend(const Napi::CallbackInfo& info);
  Napi::Value PostRecv(const Napi::CallbackInfo& info);
  Napi::Value State(const Napi::CallbackInfo& info);
  Napi::Value ToError(const Napi::CallbackInfo& info);
  Napi::Value CloseJs(const Napi::CallbackInfo& info);
  rdma_cm_id* id_ = nullptr;
  ibv_qp* qp_ = nullptr;
  Napi::ObjectReference refs_;  // keeps the CM id, PD, CQs and SRQ objects alive
};

// Parses `count` receive records from `words` into a chain; shared by QP and SRQ.
// Returns the first WR, or nullptr with a pending exception.
ibv_recv_wr* ParseRecv(Napi::Env env, const uint32_t* words, size_t nwords, uint32_t count,
                       std::vector<ibv_recv_wr>& wrs, std::vector<ibv_sge>& sges);

}  // namespace rt
