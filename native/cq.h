// Completion queue with its own completion channel, watched on the env's loop. On
// readiness: get and (in batches) ack CQ events, poll completions into the caller's record
// Buffer, re-arm, poll again to catch completions that raced the re-arm (tgt's iser.c
// pattern); one JS call per filled batch, never one per completion.
//
// Before re-arming, a wake-up may spin briefly over every CQ of the env (the env's poll
// group) when completions have recently been arriving within the poll budget: a completion
// caught by polling costs no epoll wake-up, no event read and no re-arm, which under an
// event loop are most of a qd1 I/O's cost. Adaptive, as NVMe hybrid polling: the expected
// gap to the next completion is tracked, and the spin only runs when that gap fits in the
// budget and the wake-up found only a completion or two (latency-bound: at queue depth 1
// each wake-up serves one I/O; under load a wake-up serves dozens and a spin would only
// take a CPU from the initiator). Budget 0 (the default) never spins.
#pragma once
#include <infiniband/verbs.h>

#include <memory>

#include "common.h"

namespace rt {

// One completion, as JS reads it through a Uint32Array (8 words, 32 bytes).
enum CqRecord : uint32_t { kWrIdLo = 0, kWrIdHi, kStatus, kOpcode, kByteLen, kQpNum, kWcFlags, kImmOrInvRkey, kWords };

class Cq : public Napi::ObjectWrap<Cq>, public Resource {
 public:
  static constexpr Kind kKind = Kind::Cq;
  static Napi::Function Init(Napi::Env env);
  explicit Cq(const Napi::CallbackInfo& info);
  ~Cq() override { Close(); }
  ibv_cq* cq() const { return cq_; }
  // Polls and hands what it finds to JS until the CQ is empty; returns the count.
  int Drain();

 private:
  void Release() override;
  void OnReadable();
  int PollInto();
  Napi::Value PollJs(const Napi::CallbackInfo& info);
  Napi::Value CloseJs(const Napi::CallbackInfo& info);
  static Napi::Value SetPollBudgetJs(const Napi::CallbackInfo& info);
  static Napi::Value PollStatsJs(const Napi::CallbackInfo& info);
  ibv_comp_channel* channel_ = nullptr;
  ibv_cq* cq_ = nullptr;
  unsigned unacked_ = 0;
  uint32_t* records_ = nullptr;
  int capacity_ = 0;
  std::unique_ptr<Poller> poller_;
  Napi::ObjectReference context_;
  Napi::ObjectReference recordsRef_;
  Napi::FunctionReference onCompletions_;
  std::unique_ptr<Napi::AsyncContext> async_;
};

}  // namespace rt
