#include "cq.h"

#include "device.h"

namespace rt {

static constexpr unsigned kAckBatch = 64;

Napi::Function Cq::Init(Napi::Env env) {
  return DefineClass(env, NamesOf(kKind).jsClass,
                     {InstanceMethod<&Cq::PollJs>("poll"), InstanceMethod<&Cq::CloseJs>("close")});
}

// new CompletionQueue(context, cqe, records: Buffer, onCompletions(count))
Cq::Cq(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Cq>(info), Resource(info.Env(), kKind) {
  Napi::Env env = info.Env();
  if (!info[1].IsNumber() || !info[2].IsBuffer() || !info[3].IsFunction()) {
    Napi::TypeError::New(env, "CompletionQueue(context, cqe: number, records: Buffer, onCompletions: function)")
        .ThrowAsJavaScriptException();
    return;
  }
  Context* c = Arg<Context>(env, info[0], "context");
  if (!c) return;
  auto rec = info[2].As<Napi::Buffer<uint8_t>>();
  capacity_ = static_cast<int>(rec.Length() / (kWords * 4));
  if (capacity_ < 1 || reinterpret_cast<uintptr_t>(rec.Data()) % 4) {
    Napi::RangeError::New(env, "records must be a 4-byte aligned Buffer of at least 32 bytes")
        .ThrowAsJavaScriptException();
    return;
  }
  records_ = reinterpret_cast<uint32_t*>(rec.Data());
  channel_ = ibv_create_comp_channel(c->ctx());
  if (!channel_) {
    ThrowErrno(env, "ibv_create_comp_channel", errno);
    return;
  }
  cq_ = ibv_create_cq(c->ctx(), info[1].As<Napi::Number>().Int32Value(), this, channel_, 0);
  if (!cq_) {
    int err = errno;
    ibv_destroy_comp_channel(channel_);
    channel_ = nullptr;
    ThrowErrno(env, "ibv_create_cq", err ? err : ENOMEM);
    return;
  }
  if (!SetNonBlocking(channel_->fd) || ibv_req_notify_cq(cq_, 0)) {
    ThrowErrno(env, "ibv_req_notify_cq", errno);
    Release();
    return;
  }
  recordsRef_ = Napi::Persistent(info[2].As<Napi::Object>());
  onCompletions_ = Napi::Persistent(info[3].As<Napi::Function>());
  async_ = std::make_unique<Napi::AsyncContext>(env, "rdma-target:cq");
  context_ = Napi::Persistent(info[0].As<Napi::Object>());
  poller_ = std::make_unique<Poller>(
      env, channel_->fd, [](void* self) { static_cast<Cq*>(self)->OnReadable(); }, this);
  info.This().As<Napi::Object>().Set("capacity", capacity_);
  AddParent(c);
  Opened();
}

int Cq::PollInto() {
  ibv_wc wc[32];
  int total = 0;
  while (total < capacity_) {
    int want = std::min(capacity_ - total, 32);
    int n = ibv_poll_cq(cq_, want, wc);
    if (n <= 0) break;
    for (int i = 0; i < n; i++) {
      uint32_t* r = records_ + (total + i) * kWords;
      r[kWrIdLo] = static_cast<uint32_t>(wc[i].wr_id);
      r[kWrIdHi] = static_cast<uint32_t>(wc[i].wr_id >> 32);
      r[kStatus] = wc[i].status;
      r[kOpcode] = wc[i].opcode;
      r[kByteLen] = wc[i].byte_len;
      r[kQpNum] = wc[i].qp_num;
      r[kWcFlags] = wc[i].wc_flags;
      r[kImmOrInvRkey] = (wc[i].wc_flags & IBV_WC_WITH_INV) ? wc[i].invalidated_rkey : be32toh(wc[i].imm_data);
    }
    total += n;
    if (n < want) break;
  }
  return total;
}

void Cq::Drain() {
  Napi::Env env = Env();
  while (!closed()) {
    int n = PollInto();
    if (n == 0) return;
    Napi::HandleScope scope(env);
    CallFromLoop(env, onCompletions_, *async_, {Napi::Number::New(env, n)});
    if (n < capacity_) return;
  }
}

void Cq::OnReadable() {
  ibv_cq* evCq;
  void* evCtx;
  // One event per arming: a second read would only return EAGAIN (a system call per wake-up,
  // which under soft-RoCE's emulated test VM costs as much as the JS of a command).
  if (ibv_get_cq_event(channel_, &evCq, &evCtx) == 0) unacked_++;
  if (unacked_ >= kAckBatch) {
    ibv_ack_cq_events(cq_, unacked_);
    unacked_ = 0;
  }
  Drain();
  if (closed()) return;
  ibv_req_notify_cq(cq_, 0);
  Drain();
}

// Synchronous poll into the records (busy polling, tests): returns the count.
Napi::Value Cq::PollJs(const Napi::CallbackInfo& info) {
  if (!CheckOpen(info.Env())) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), PollInto());
}

void Cq::Release() {
  poller_.reset();
  if (cq_) {
    if (unacked_) ibv_ack_cq_events(cq_, unacked_);
    ibv_destroy_cq(cq_);
  }
  if (channel_) ibv_destroy_comp_channel(channel_);
  cq_ = nullptr;
  channel_ = nullptr;
  unacked_ = 0;
  records_ = nullptr;
  recordsRef_.Reset();
  context_.Reset();
}

Napi::Value Cq::CloseJs(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

}  // namespace rt
