#include "cq.h"

#include <time.h>

#include <algorithm>
#include <vector>

#include "device.h"

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

namespace rt {

static constexpr unsigned kAckBatch = 64;
// A wake-up that found more completions than this is throughput-bound: its wake-up is
// already shared by many I/Os, and a spin would only hold a CPU the initiator may need.
static constexpr int kSpinMaxBatch = 2;

namespace {

uint64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// The spin's clock: the CPU's counter where there is one, because in an emulated guest
// clock_gettime can be a system call while reading the counter is one instruction.
uint64_t Ticks() {
#if defined(__x86_64__) || defined(__i386__)
  return __rdtsc();
#elif defined(__aarch64__)
  uint64_t v;
  asm volatile("mrs %0, cntvct_el0" : "=r"(v));
  return v;
#else
  return MonoNs();
#endif
}

double MeasureTicksPerUs() {
  uint64_t n0 = MonoNs(), t0 = Ticks();
  timespec d{0, 10 * 1000 * 1000};
  nanosleep(&d, nullptr);
  uint64_t n1 = MonoNs(), t1 = Ticks();
  double perUs = static_cast<double>(t1 - t0) * 1000.0 / static_cast<double>(n1 - n0);
  return perUs > 0 ? perUs : 1000.0;
}

// The env's CQs and the adaptive spin's state. One per thread: an env runs on one thread.
struct PollGroup {
  std::vector<Cq*> cqs;
  uint64_t budget = 0;  // ticks; 0: never spin
  double ticksPerUs = 0;
  double expectedGap = 0;  // ticks from the end of a wake-up's work to the next completion
  uint64_t lastIdle = 0;   // Ticks() when the last wake-up went back to the loop
  bool spinning = false;
  // Counters for tuning and tests: spins, completion batches they caught, ticks spun (the
  // JS work done for those batches included).
  double spins = 0, hits = 0, spunTicks = 0;
  // Wake-ups by a completion event, and completions handed to JS: their ratio to the I/Os
  // served says how many wake-ups an I/O costs (at queue depth 1 it is what latency is made of).
  double wakes = 0, completions = 0;

  void NoteGap(uint64_t gap) {
    // A long idle period must not switch spinning off for long once traffic is back.
    double g = static_cast<double>(std::min<uint64_t>(gap, 4 * budget));
    expectedGap += (g - expectedGap) / 8;
  }
  uint64_t Spin(uint64_t idleSince, int found);
};

thread_local PollGroup group;

// Polls every CQ of the env and hands what it finds to JS, until no completion came for
// `limit` ticks, the wake-up has spun its cap (then the loop runs its timers, sockets
// and CM events, and the next completion wakes it), or a batch came that shows the load is
// throughput-bound. `idleSince` is when the caller's work ended, `found` the completions
// the wake-up handled; returns when the last work ended.
uint64_t PollGroup::Spin(uint64_t idleSince, int found) {
  if (budget == 0 || spinning || found > kSpinMaxBatch || expectedGap > static_cast<double>(budget)) return idleSince;
  uint64_t limit = std::min<uint64_t>(budget, static_cast<uint64_t>(2 * expectedGap) + budget / 8);
  uint64_t start = Ticks(), now = start;
  uint64_t cap = std::max<uint64_t>(8 * budget, static_cast<uint64_t>(1000 * ticksPerUs));
  spinning = true;
  spins++;
  while (now - idleSince <= limit && now - start <= cap) {
    // By index, re-reading the size: JS called from Drain may close (remove) CQs.
    int most = 0;
    for (size_t i = 0; i < cqs.size(); i++) {
      uint64_t at = Ticks();
      int n = cqs[i]->Drain();
      if (n == 0) continue;
      hits++;
      most = std::max(most, n);
      NoteGap(at - idleSince);
      idleSince = Ticks();
    }
    now = Ticks();
    if (most > kSpinMaxBatch) break;
  }
  spunTicks += static_cast<double>(now - start);
  spinning = false;
  return idleSince;
}

}  // namespace

Napi::Function Cq::Init(Napi::Env env) {
  return DefineClass(
      env, NamesOf(kKind).jsClass,
      {InstanceMethod<&Cq::PollJs>("poll"), InstanceMethod<&Cq::CloseJs>("close"),
       StaticMethod<&Cq::SetPollBudgetJs>("setPollBudget"), StaticMethod<&Cq::PollStatsJs>("pollStats")});
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
  group.cqs.push_back(this);
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

int Cq::Drain() {
  Napi::Env env = Env();
  int total = 0;
  while (!closed()) {
    int n = PollInto();
    if (n == 0) break;
    total += n;
    group.completions += n;
    Napi::HandleScope scope(env);
    CallFromLoop(env, onCompletions_, *async_, {Napi::Number::New(env, n)});
    if (n < capacity_) break;
  }
  return total;
}

void Cq::OnReadable() {
  // The wait since the env's last wake-up went idle: what the spin's budget is judged by.
  if (group.budget && group.lastIdle) group.NoteGap(Ticks() - group.lastIdle);
  ibv_cq* evCq;
  void* evCtx;
  // One event per arming: a second read would only return EAGAIN (a system call per wake-up,
  // which under soft-RoCE's emulated test VM costs as much as the JS of a command).
  if (ibv_get_cq_event(channel_, &evCq, &evCtx) == 0) unacked_++;
  group.wakes++;
  if (unacked_ >= kAckBatch) {
    ibv_ack_cq_events(cq_, unacked_);
    unacked_ = 0;
  }
  int found = Drain();
  if (closed()) return;
  uint64_t idle = group.Spin(Ticks(), found);
  if (closed()) return;
  ibv_req_notify_cq(cq_, 0);
  if (Drain() > 0) idle = Ticks();
  group.lastIdle = idle;
}

// Synchronous poll into the records (busy polling, tests): returns the count.
Napi::Value Cq::PollJs(const Napi::CallbackInfo& info) {
  if (!CheckOpen(info.Env())) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), PollInto());
}

void Cq::Release() {
  group.cqs.erase(std::remove(group.cqs.begin(), group.cqs.end(), this), group.cqs.end());
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

// CompletionQueue.setPollBudget(us): the most a wake-up spins over the env's CQs; 0 never.
Napi::Value Cq::SetPollBudgetJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double us = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
  if (!(us >= 0 && us <= 1e6)) {
    Napi::RangeError::New(env, "setPollBudget(us): a number of microseconds from 0 to 1000000")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (us > 0 && group.ticksPerUs == 0) group.ticksPerUs = MeasureTicksPerUs();
  group.budget = static_cast<uint64_t>(us * group.ticksPerUs);
  group.expectedGap = static_cast<double>(group.budget) / 2;
  return env.Undefined();
}

// CompletionQueue.pollStats(): { budgetUs, spins, hits, spunUs, expectedGapUs, wakes, completions }.
Napi::Value Cq::PollStatsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double perUs = group.ticksPerUs > 0 ? group.ticksPerUs : 1;
  Napi::Object o = Napi::Object::New(env);
  o.Set("budgetUs", static_cast<double>(group.budget) / perUs);
  o.Set("spins", group.spins);
  o.Set("hits", group.hits);
  o.Set("spunUs", group.spunTicks / perUs);
  o.Set("expectedGapUs", group.expectedGap / perUs);
  o.Set("wakes", group.wakes);
  o.Set("completions", group.completions);
  return o;
}

Napi::Value Cq::CloseJs(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

}  // namespace rt
