#include "common.h"

#include <fcntl.h>

#include <algorithm>

namespace rt {

Napi::Error CodeError(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

Napi::Error ErrnoError(Napi::Env env, const char* syscall, int err) {
  const char* name = strerrorname_np(err);
  std::string msg = std::string(syscall) + " failed: " + strerror(err);
  Napi::Error e = CodeError(env, name ? name : "EUNKNOWN", msg);
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

const KindNames& NamesOf(Kind kind) {
  static const KindNames names[] = {
      {"Context", "device context", "contexts"},
      {"ProtectionDomain", "protection domain", "pds"},
      {"MemoryRegion", "memory region", "mrs"},
      {"CompletionQueue", "completion queue", "cqs"},
      {"SharedReceiveQueue", "shared receive queue", "srqs"},
      {"QueuePair", "queue pair", "qps"},
      {"CmEventChannel", "CM event channel", "cmChannels"},
      {"CmId", "CM id", "cmIds"},
  };
  static_assert(sizeof names / sizeof names[0] == static_cast<size_t>(Kind::Count), "one entry per Kind");
  return names[static_cast<int>(kind)];
}

Module* Module::Load(Napi::Env env) {
  if (Module* m = Of(env)) return m;  // loaded again in the same env: one state
  Module* m = new Module();
  env.SetInstanceData(m);  // deleted with the env, after the cleanup hook below has run
  // Cleanup hooks run before the env's instance data is freed: at worker exit or process
  // exit, this env's objects close children first and nothing is left to the GC.
  napi_add_env_cleanup_hook(
      env, [](void* m) { static_cast<Module*>(m)->CloseAll(); }, m);
  return m;
}

void Module::SetClass(Kind kind, Napi::Function ctor) { ctors_[static_cast<int>(kind)] = Napi::Persistent(ctor); }

void Module::CloseAll() {
  while (!all_.empty()) all_.back()->Close();
}

Resource::Resource(Napi::Env env, Kind kind) : module_(Module::Of(env)), kind_(kind) {}

void Resource::Opened() {
  opened_ = true;
  module_->live_[static_cast<int>(kind_)]++;
  module_->all_.push_back(this);
}

bool Resource::CheckOpen(Napi::Env env) const {
  if (open()) return true;
  ThrowCode(env, "ERR_CLOSED", std::string("the ") + NamesOf(kind_).noun + " is closed");
  return false;
}

// Derived destructors call Close(): Release() is virtual and cannot run from here.
Resource::~Resource() {}

void Resource::AddParent(Resource* parent) {
  parents_.push_back(parent);
  parent->children_.push_back(this);
}

void Resource::RemoveChild(Resource* child) {
  children_.erase(std::remove(children_.begin(), children_.end(), child), children_.end());
}

void Resource::Close() {
  if (closed_) return;
  closed_ = true;
  // Children first, newest first: a QP goes before the CQ and PD it uses.
  while (!children_.empty()) {
    Resource* child = children_.back();
    children_.pop_back();
    child->Close();
  }
  Release();
  for (Resource* p : parents_) p->RemoveChild(this);
  parents_.clear();
  if (!opened_) return;
  std::vector<Resource*>& all = module_->all_;
  module_->live_[static_cast<int>(kind_)]--;
  all.erase(std::remove(all.begin(), all.end(), this), all.end());
}

bool UintFits(Napi::Env env, Napi::Value v, const char* name, double max, double* out) {
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (d >= 0 && d <= max && d == static_cast<double>(static_cast<uint64_t>(d))) {
    *out = d;
    return true;
  }
  Napi::TypeError::New(
      env, std::string(name) + " must be an integer from 0 to " + std::to_string(static_cast<uint64_t>(max)))
      .ThrowAsJavaScriptException();
  return false;
}

Options::Options(Napi::Env env, Napi::Value v) : env_(env) {
  if (v.IsObject()) {
    obj_ = v.As<Napi::Object>();
    has_ = true;
  } else if (!v.IsNull() && !v.IsUndefined()) {
    Napi::TypeError::New(env, "options must be an object").ThrowAsJavaScriptException();
    ok_ = false;
  }
}

Options& Options::Buffer(const char* key, Napi::Buffer<uint8_t>* dst) {
  if (!ok_ || !has_) return *this;
  Napi::Value v = obj_.Get(key);
  if (v.IsBuffer())
    *dst = v.As<Napi::Buffer<uint8_t>>();
  else if (!v.IsNull() && !v.IsUndefined()) {
    Napi::TypeError::New(env_, std::string(key) + " must be a Buffer").ThrowAsJavaScriptException();
    ok_ = false;
  }
  return *this;
}

bool SetNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

Poller::Poller(Napi::Env env, int fd, Callback onReadable, void* owner) : onReadable_(onReadable), owner_(owner) {
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  handle_ = new uv_poll_t;
  handle_->data = this;
  uv_poll_init(loop, handle_, fd);
  uv_poll_start(handle_, UV_READABLE, OnPoll);
}

Poller::~Poller() { Stop(); }

void Poller::Stop() {
  if (!handle_) return;
  uv_poll_stop(handle_);
  handle_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(handle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
  handle_ = nullptr;
}

void Poller::OnPoll(uv_poll_t* handle, int status, int) {
  auto* self = static_cast<Poller*>(handle->data);
  if (!self || status < 0) return;
  // Copied out first: the call may delete `self` (JS closing the owner); nothing after it
  // touches the Poller.
  Callback cb = self->onReadable_;
  void* owner = self->owner_;
  cb(owner);
}

void CallFromLoop(Napi::Env env, Napi::FunctionReference& fn, Napi::AsyncContext& ctx,
                  std::initializer_list<napi_value> args) {
  Napi::HandleScope scope(env);
  napi_value result;
  napi_status st = napi_make_callback(env, static_cast<napi_async_context>(ctx), env.Global(), fn.Value(), args.size(),
                                      args.begin(), &result);
  if (st == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
}

}  // namespace rt
