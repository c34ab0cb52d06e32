#include "qp.h"

#include "cm.h"
#include "cq.h"
#include "pd.h"

namespace rt {

static inline uint64_t U64(const uint32_t* w) { return w[0] | (static_cast<uint64_t>(w[1]) << 32); }

// Words of a typed array or Buffer argument; nullptr with a pending TypeError otherwise.
// One napi_get_typedarray_info call (the data pointer already includes the byte offset):
// this runs on every post, so no node-addon-api wrappers that query V8 again per field.
static const uint32_t* Words(Napi::Env env, Napi::Value v, size_t* nwords) {
  bool isTa = false;
  napi_is_typedarray(env, v, &isTa);
  if (isTa) {
    napi_typedarray_type type;
    size_t length;
    void* data = nullptr;
    if (napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr) == napi_ok &&
        reinterpret_cast<uintptr_t>(data) % 4 == 0) {
      static const int kBytes[] = {1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8};
      *nwords = type <= napi_biguint64_array ? length * kBytes[type] / 4 : 0;
      return static_cast<const uint32_t*>(data);
    }
  }
  Napi::TypeError::New(env, "work requests must be a 4-byte aligned Uint32Array or Buffer")
      .ThrowAsJavaScriptException();
  return nullptr;
}

// The optional word offset of the first record: posting a range of a prebuilt table of
// WRs without making a subarray view per post.
static bool Skip(Napi::Env env, Napi::Value v, const uint32_t** w, size_t* nwords) {
  if (v.IsUndefined()) return true;
  uint32_t off = 0;
  if (napi_get_value_uint32(env, v, &off) != napi_ok || off > *nwords) {
    Napi::RangeError::New(env, "offset (in 32-bit words) is outside the work-request array")
        .ThrowAsJavaScriptException();
    return false;
  }
  *w += off;
  *nwords -= off;
  return true;
}

// The WR count argument: a plain uint32 read, no coercion.
static uint32_t Count(Napi::Env env, Napi::Value v) {
  uint32_t n = 0;
  napi_get_value_uint32(env, v, &n);
  return n;
}

static Napi::Error WrError(Napi::Env env, const char* call, int err, uint32_t index) {
  Napi::Error e = ErrnoError(env, call, err);
  e.Set("index", Napi::Number::New(env, index));
  return e;
}

ibv_recv_wr* ParseRecv(Napi::Env env, const uint32_t* w, size_t nwords, uint32_t count, std::vector<ibv_recv_wr>& wrs,
                       std::vector<ibv_sge>& sges) {
  wrs.resize(count);
  sges.resize(static_cast<size_t>(count) * kMaxSgePerWr);
  size_t at = 0;
  for (uint32_t i = 0; i < count; i++) {
    if (at + 4 > nwords || w[at + 2] > kMaxSgePerWr || at + 4 + 4 * w[at + 2] > nwords) {
      WrError(env, "ibv_post_recv", EINVAL, i).ThrowAsJavaScriptException();
      return nullptr;
    }
    ibv_recv_wr& wr = wrs[i];
    wr.wr_id = U64(w + at);
    wr.num_sge = static_cast<int>(w[at + 2]);
    wr.sg_list = &sges[static_cast<size_t>(i) * kMaxSgePerWr];
    wr.next = i + 1 < count ? &wrs[i + 1] : nullptr;
    at += 4;
    for (int s = 0; s < wr.num_sge; s++, at += 4) wr.sg_list[s] = ibv_sge{U64(w + at), w[at + 2], w[at + 3]};
  }
  return count ? &wrs[0] : nullptr;
}

// Scratch chains reused across calls: posting allocates nothing once they have grown.
// Thread-local, so per environment (each has its own thread): workers never share them.
static thread_local std::vector<ibv_send_wr> g_sendWrs;
static thread_local std::vector<ibv_recv_wr> g_recvWrs;
static thread_local std::vector<ibv_sge> g_sges;

static Napi::Value PostRecvCommon(const Napi::CallbackInfo& info, ibv_qp* qp, ibv_srq* srq) {
  Napi::Env env = info.Env();
  size_t nwords;
  const uint32_t* w = Words(env, info[0], &nwords);
  if (!w || !Skip(env, info[2], &w, &nwords)) return env.Undefined();
  uint32_t count = Count(env, info[1]);
  ibv_recv_wr* first = ParseRecv(env, w, nwords, count, g_recvWrs, g_sges);
  if (!first) return env.IsExceptionPending() ? env.Undefined() : Napi::Number::New(env, 0);
  ibv_recv_wr* bad = nullptr;
  int err = qp ? ibv_post_recv(qp, first, &bad) : ibv_post_srq_recv(srq, first, &bad);
  if (err) {
    if (err < 0) err = -err;  // some providers return -errno
    if (!bad) bad = first;
    WrError(env, qp ? "ibv_post_recv" : "ibv_post_srq_recv", err, static_cast<uint32_t>(bad - first))
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, count);
}

// ---------------------------------------------------------------- SRQ

Napi::Function Srq::Init(Napi::Env env) {
  return DefineClass(env, NamesOf(kKind).jsClass,
                     {InstanceMethod<&Srq::PostRecv>("postRecv"), InstanceMethod<&Srq::CloseJs>("close")});
}

// new SharedReceiveQueue(pd, { maxWr, maxSge })
Srq::Srq(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Srq>(info), Resource(info.Env(), kKind) {
  Napi::Env env = info.Env();
  Pd* pd = Arg<Pd>(env, info[0], "pd");
  if (!pd) return;
  ibv_srq_init_attr attr{};
  attr.attr.max_wr = 1024;
  attr.attr.max_sge = 1;
  if (!Options(env, info[1]).Uint("maxWr", &attr.attr.max_wr).Uint("maxSge", &attr.attr.max_sge).ok()) return;
  srq_ = ibv_create_srq(pd->pd(), &attr);
  if (!srq_) {
    ThrowErrno(env, "ibv_create_srq", errno ? errno : ENOMEM);
    return;
  }
  pd_ = Napi::Persistent(info[0].As<Napi::Object>());
  AddParent(pd);
  Opened();
}

void Srq::Release() {
  if (srq_) ibv_destroy_srq(srq_);
  srq_ = nullptr;
  pd_.Reset();
}

Napi::Value Srq::PostRecv(const Napi::CallbackInfo& info) {
  if (!CheckOpen(info.Env())) return info.Env().Undefined();
  return PostRecvCommon(info, nullptr, srq_);
}

Napi::Value Srq::CloseJs(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

// ---------------------------------------------------------------- QP

Napi::Function Qp::Init(Napi::Env env) {
  return DefineClass(env, NamesOf(kKind).jsClass,
                     {InstanceMethod<&Qp::PostSend>("postSend"), InstanceMethod<&Qp::PostRecv>("postRecv"),
                      InstanceMethod<&Qp::State>("state"), InstanceMethod<&Qp::ToError>("toError"),
                      InstanceMethod<&Qp::CloseJs>("close")});
}

// new QueuePair(cmId, pd, sendCq, recvCq, srq | null, { maxSendWr, maxRecvWr, maxSendSge,
//               maxRecvSge, maxInlineData })
Qp::Qp(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Qp>(info), Resource(info.Env(), kKind) {
  Napi::Env env = info.Env();
  CmId* id = Arg<CmId>(env, info[0], "cmId");
  if (!id) return;
  Pd* pd = Arg<Pd>(env, info[1], "pd");
  if (!pd) return;
  Cq* scq = Arg<Cq>(env, info[2], "sendCq");
  if (!scq) return;
  Cq* rcq = Arg<Cq>(env, info[3], "recvCq");
  if (!rcq) return;
  Srq* srq;
  if (!OptionalArg<Srq>(env, info[4], "srq", &srq)) return;
  if (id->id()->qp) {
    ThrowCode(env, "EBUSY", "this CM id already has a queue pair");
    return;
  }
  ibv_qp_init_attr attr{};
  attr.qp_type = IBV_QPT_RC;
  attr.send_cq = scq->cq();
  attr.recv_cq = rcq->cq();
  attr.srq = srq ? srq->srq() : nullptr;
  attr.cap = {128, 128, 1, 1, 0};
  if (!Options(env, info[5])
           .Uint("maxSendWr", &attr.cap.max_send_wr)
           .Uint("maxRecvWr", &attr.cap.max_recv_wr)
           .Uint("maxSendSge", &attr.cap.max_send_sge)
           .Uint("maxRecvSge", &attr.cap.max_recv_sge)
           .Uint("maxInlineData", &attr.cap.max_inline_data)
           .ok())
    return;
  if (srq) attr.cap.max_recv_wr = attr.cap.max_recv_sge = 0;
  if (rdma_create_qp(id->id(), pd->pd(), &attr)) {
    ThrowErrno(env, "rdma_create_qp", errno);
    return;
  }
  id_ = id->id();
  qp_ = id_->qp;
  Napi::Object refs = Napi::Object::New(env);
  for (int i = 0; i < 5; i++) refs.Set(i, info[i]);
  refs_ = Napi::Persistent(refs);
  Napi::Object self = info.This().As<Napi::Object>();
  self.Set("qpNum", Napi::Number::New(env, qp_->qp_num));
  self.Set("maxInlineData", Napi::Number::New(env, attr.cap.max_inline_data));
  AddParent(id);
  AddParent(pd);
  AddParent(scq);
  if (rcq != scq) AddParent(rcq);
  if (srq) AddParent(srq);
  Opened();
}

void Qp::Release() {
  if (qp_) rdma_destroy_qp(id_);
  qp_ = nullptr;
  id_ = nullptr;
  refs_.Reset();
}

// postSend(words: Uint32Array, count, offsetWords = 0) → count; on failure an Error with
// .index of the bad WR (counted from the first posted).
Napi::Value Qp::PostSend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  size_t nwords;
  const uint32_t* w = Words(env, info[0], &nwords);
  if (!w || !Skip(env, info[2], &w, &nwords)) return env.Undefined();
  uint32_t count = Count(env, info[1]);
  if (count == 0) return Napi::Number::New(env, 0);
  g_sendWrs.resize(count);
  g_sges.resize(static_cast<size_t>(count) * kMaxSgePerWr);
  size_t at = 0;
  for (uint32_t i = 0; i < count; i++) {
    if (at + 10 > nwords || w[at + 4] > kMaxSgePerWr || at + 10 + 4 * w[at + 4] > nwords) {
      WrError(env, "ibv_post_send", EINVAL, i).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    ibv_send_wr& wr = g_sendWrs[i];
    wr = ibv_send_wr{};
    wr.wr_id = U64(w + at);
    wr.opcode = static_cast<ibv_wr_opcode>(w[at + 2]);
    wr.send_flags = w[at + 3];
    wr.num_sge = static_cast<int>(w[at + 4]);
    if (wr.opcode == IBV_WR_SEND_WITH_INV)
      wr.invalidate_rkey = w[at + 5];
    else
      wr.imm_data = htobe32(w[at + 5]);
    wr.wr.rdma.rkey = w[at + 6];
    wr.wr.rdma.remote_addr = U64(w + at + 8);
    wr.sg_list = &g_sges[static_cast<size_t>(i) * kMaxSgePerWr];
    wr.next = i + 1 < count ? &g_sendWrs[i + 1] : nullptr;
    at += 10;
    for (int s = 0; s < wr.num_sge; s++, at += 4) wr.sg_list[s] = ibv_sge{U64(w + at), w[at + 2], w[at + 3]};
  }
  ibv_send_wr* bad = nullptr;
  int err = ibv_post_send(qp_, &g_sendWrs[0], &bad);
  if (err) {
    if (err < 0) err = -err;  // some providers return -errno
    if (!bad) bad = &g_sendWrs[0];
    WrError(env, "ibv_post_send", err, static_cast<uint32_t>(bad - &g_sendWrs[0])).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, count);
}

Napi::Value Qp::PostRecv(const Napi::CallbackInfo& info) {
  if (!CheckOpen(info.Env())) return info.Env().Undefined();
  return PostRecvCommon(info, qp_, nullptr);
}

Napi::Value Qp::State(const Napi::CallbackInfo& info) {
  static const char* names[] = {"RESET", "INIT", "RTR", "RTS", "SQD", "SQE", "ERR", "UNKNOWN"};
  if (!qp_) return Napi::String::New(info.Env(), "CLOSED");
  ibv_qp_attr attr;
  ibv_qp_init_attr init;
  if (ibv_query_qp(qp_, &attr, IBV_QP_STATE, &init)) {
    ThrowErrno(info.Env(), "ibv_query_qp", errno);
    return info.Env().Undefined();
  }
  return Napi::String::New(info.Env(), names[std::min<int>(attr.qp_state, 7)]);
}

// Moves the QP to ERROR so every outstanding WR completes (flushed) before close.
Napi::Value Qp::ToError(const Napi::CallbackInfo& info) {
  if (!qp_) return info.Env().Undefined();
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_ERR;
  if (int err = ibv_modify_qp(qp_, &attr, IBV_QP_STATE)) ThrowErrno(info.Env(), "ibv_modify_qp", err);
  return info.Env().Undefined();
}

Napi::Value Qp::CloseJs(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

}  // namespace rt
