// Shared pieces of the binding: errors with `code`, the ownership tree every verbs object
// joins, and an RAII uv_poll watcher. Design rules (design.md): one owner per resource,
// children closed before parents, nothing left to the garbage collector at exit.
#pragma once
#define NAPI_VERSION 8
#include <napi.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace rt {

// Throws (as a pending JS exception) an Error whose `code` is the errno name and whose
// `syscall` names the verbs or CM call that failed.
Napi::Error ErrnoError(Napi::Env env, const char* syscall, int err);
Napi::Error CodeError(Napi::Env env, const char* code, const std::string& message);
inline void ThrowErrno(Napi::Env env, const char* syscall, int err) {
  ErrnoError(env, syscall, err).ThrowAsJavaScriptException();
}
inline void ThrowCode(Napi::Env env, const char* code, const std::string& message) {
  CodeError(env, code, message).ThrowAsJavaScriptException();
}

enum class Kind { Context, Pd, Mr, Cq, Srq, Qp, CmChannel, CmId, Count };

// A node in the ownership tree. A child may have several parents (a QP depends on its PD,
// CQs, SRQ and CM id); closing any parent closes the child first. Close() is idempotent.
class Resource {
 public:
  explicit Resource(Kind kind);
  virtual ~Resource();
  void Close();
  bool closed() const { return closed_; }
  void AddParent(Resource* parent);
  // Marks construction as successful: from here the resource counts as live and the env
  // cleanup hook will close it. A constructor that failed never calls it.
  void Opened();

 protected:
  // Releases the underlying verbs/CM object. Called once, after every child is closed.
  virtual void Release() = 0;

 private:
  void RemoveChild(Resource* child);
  Kind kind_;
  bool closed_ = false;
  bool opened_ = false;
  std::vector<Resource*> parents_;
  std::vector<Resource*> children_;
};

// Live (open) resources per kind, for leak checks, and the list that the env cleanup hook
// closes in dependency order.
int LiveCount(Kind kind);
void CloseAll();

// Watches one fd for readability on the env's own loop (never uv_default_loop). The handle
// is freed in uv_close's callback, and the callback is a plain function pointer read before
// the call, so JS may close the owner (destroying this Poller) from inside the callback.
class Poller {
 public:
  using Callback = void (*)(void* owner);
  Poller(Napi::Env env, int fd, Callback onReadable, void* owner);
  ~Poller();
  void Stop();

 private:
  static void OnPoll(uv_poll_t* handle, int status, int events);
  uv_poll_t* handle_ = nullptr;
  Callback onReadable_;
  void* owner_;
};

bool SetNonBlocking(int fd);

// Calls a JS function from a libuv callback: opens a handle scope and callback scope and
// routes an exception thrown by JS to process 'uncaughtException'.
void CallFromLoop(Napi::Env env, Napi::FunctionReference& fn, Napi::AsyncContext& ctx,
                  const std::vector<napi_value>& args);

}  // namespace rt
