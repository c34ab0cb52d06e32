// Shared pieces of the binding: errors with `code`, the ownership tree every verbs object
// joins, the per-environment state (class constructors, live objects), argument and option
// readers, and an RAII uv_poll watcher. Design rules (docs/architecture.md): one owner per resource,
// children closed before parents, nothing left to the garbage collector at exit.
#pragma once
#define NAPI_VERSION 8
#include <napi.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <limits>
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

// What JS sees of each kind: the class name, the noun in ERR_CLOSED messages, the key in
// liveObjects().
struct KindNames {
  const char* jsClass;
  const char* noun;
  const char* liveKey;
};
const KindNames& NamesOf(Kind kind);

class Resource;

// The binding's state in one Node environment (the main thread, each worker thread): the
// class constructors that arguments are checked against, and the live resources that the
// env's cleanup hook closes, so that one environment ending closes only its own objects.
// Set as the env's instance data when the addon loads; freed with the env.
class Module {
 public:
  static Module* Of(Napi::Env env) { return env.GetInstanceData<Module>(); }
  // The env's Module, made (with its cleanup hook) on the first load in that env.
  static Module* Load(Napi::Env env);
  void SetClass(Kind kind, Napi::Function ctor);
  Napi::Function Class(Kind kind) const { return ctors_[static_cast<int>(kind)].Value(); }
  int LiveCount(Kind kind) const { return live_[static_cast<int>(kind)]; }
  // Newest first; a parent takes its children with it.
  void CloseAll();

 private:
  friend class Resource;
  Napi::FunctionReference ctors_[static_cast<int>(Kind::Count)];
  int live_[static_cast<int>(Kind::Count)] = {};
  std::vector<Resource*> all_;
};

// A node in the ownership tree. A child may have several parents (a QP depends on its PD,
// CQs, SRQ and CM id); closing any parent closes the child first. Close() is idempotent.
class Resource {
 public:
  Resource(Napi::Env env, Kind kind);
  virtual ~Resource();
  void Close();
  bool closed() const { return closed_; }
  // Constructed successfully and not closed yet.
  bool open() const { return opened_ && !closed_; }
  // open(), or false with ERR_CLOSED pending ("the queue pair is closed").
  bool CheckOpen(Napi::Env env) const;
  void AddParent(Resource* parent);
  // Marks construction as successful: from here the resource counts as live and the env
  // cleanup hook will close it. A constructor that failed never calls it.
  void Opened();
  Module* module() const { return module_; }

 protected:
  // Releases the underlying verbs/CM object. Called once, after every child is closed.
  virtual void Release() = 0;

 private:
  void RemoveChild(Resource* child);
  Module* module_;
  Kind kind_;
  bool closed_ = false;
  bool opened_ = false;
  std::vector<Resource*> parents_;
  std::vector<Resource*> children_;
};

// The open T (a wrapped class with a `kKind`) that argument `name` holds, or nullptr with
// a pending exception: a TypeError naming the argument when it is not a T of this env,
// ERR_CLOSED when it is closed.
template <class T>
T* Arg(Napi::Env env, Napi::Value v, const char* name) {
  if (v.IsObject() && v.As<Napi::Object>().InstanceOf(Module::Of(env)->Class(T::kKind))) {
    T* t = T::Unwrap(v.As<Napi::Object>());
    return t->CheckOpen(env) ? t : nullptr;
  }
  Napi::TypeError::New(env, std::string(name) + " must be a " + NamesOf(T::kKind).jsClass).ThrowAsJavaScriptException();
  return nullptr;
}

// Arg() for an argument that may also be null or undefined (*out = nullptr then). Returns
// false with a pending exception.
template <class T>
bool OptionalArg(Napi::Env env, Napi::Value v, const char* name, T** out) {
  *out = nullptr;
  if (v.IsNull() || v.IsUndefined()) return true;
  *out = Arg<T>(env, v, name);
  return *out != nullptr;
}

// An optional unsigned integer that must fit U: undefined or null leaves *dst (the
// default); anything else that is not such an integer leaves a TypeError naming `name`
// pending and returns false.
bool UintFits(Napi::Env env, Napi::Value v, const char* name, double max, double* out);
template <class U>
bool OptionalUint(Napi::Env env, Napi::Value v, const char* name, U* dst) {
  if (v.IsNull() || v.IsUndefined()) return true;
  double d;
  if (!UintFits(env, v, name, static_cast<double>(std::numeric_limits<U>::max()), &d)) return false;
  *dst = static_cast<U>(d);
  return true;
}

// The fields of an optional options object, read into their defaults:
//   Options o(env, info[1]); o.Uint("maxWr", &attr.max_wr).Uint("maxSge", &attr.max_sge);
//   if (!o.ok()) return;
// An absent object or field keeps the default; the first bad field leaves its TypeError
// pending, and the reads after it do nothing.
class Options {
 public:
  Options(Napi::Env env, Napi::Value v);
  bool ok() const { return ok_; }
  template <class U>
  Options& Uint(const char* key, U* dst) {
    if (ok_ && has_) ok_ = OptionalUint(env_, obj_.Get(key), key, dst);
    return *this;
  }
  // A Buffer field: *dst is set (and keeps the Buffer alive) when present.
  Options& Buffer(const char* key, Napi::Buffer<uint8_t>* dst);

 private:
  Napi::Env env_;
  Napi::Object obj_;
  bool has_ = false;
  bool ok_ = true;
};

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
// The arguments are an initializer list: no heap allocation per call (the CQ calls it per
// completion batch).
void CallFromLoop(Napi::Env env, Napi::FunctionReference& fn, Napi::AsyncContext& ctx,
                  std::initializer_list<napi_value> args);

}  // namespace rt
