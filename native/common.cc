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

static int g_live[static_cast<int>(Kind::Count)];
static std::vector<Resource*> g_all;

Resource::Resource(Kind kind) : kind_(kind) {}

void Resource::Opened() {
  opened_ = true;
  g_live[static_cast<int>(kind_)]++;
  g_all.push_back(this);
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
  g_live[static_cast<int>(kind_)]--;
  g_all.erase(std::remove(g_all.begin(), g_all.end(), this), g_all.end());
}

int LiveCount(Kind kind) { return g_live[static_cast<int>(kind)]; }

void CloseAll() {
  // Newest first; Close() of a parent takes its children with it.
  while (!g_all.empty()) g_all.back()->Close();
}

bool SetNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

Poller::Poller(Napi::Env env, int fd, Callback onReadable, void* owner)
    : onReadable_(onReadable), owner_(owner) {
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
  uv_close(reinterpret_cast<uv_handle_t*>(handle_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
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
                  const std::vector<napi_value>& args) {
  Napi::HandleScope scope(env);
  napi_value result;
  napi_status st = napi_make_callback(env, static_cast<napi_async_context>(ctx),
                                      env.Global(), fn.Value(), args.size(), args.data(), &result);
  if (st == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
}

}  // namespace rt
