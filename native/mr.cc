#include "mr.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pd.h"

namespace rt {

static Napi::Value NewAligned(Napi::Env env, double size) {
  if (!(size > 0) || size > 1ull << 40 || size != static_cast<double>(static_cast<size_t>(size))) {
    Napi::RangeError::New(env, "size must be a positive integer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  size_t len = static_cast<size_t>(size);
  // Anonymous mmap: page-aligned and zero-filled lazily by the kernel, so a large RAM LUN
  // costs no resident memory until it is written or registered (ibv_reg_mr pins it then).
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    ThrowErrno(env, "mmap", errno);
    return env.Undefined();
  }
  return Napi::Buffer<uint8_t>::New(env, static_cast<uint8_t*>(p), len,
                                    [len](Napi::Env, uint8_t* data) { munmap(data, len); });
}

Napi::Value AllocAligned(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber()) {
    Napi::TypeError::New(info.Env(), "allocAligned(size: number)").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return NewAligned(info.Env(), info[0].As<Napi::Number>().DoubleValue());
}

Napi::Function Mr::Init(Napi::Env env) {
  return DefineClass(env, NamesOf(kKind).jsClass, {InstanceMethod<&Mr::CloseJs>("close")});
}

// new MemoryRegion(pd, sizeOrBuffer, access)
// With a size, allocates page-aligned memory; with a Buffer, registers that Buffer's memory
// (it must come from allocAligned or another native allocation, never Node's Buffer pool).
// Sets this.buffer, this.lkey, this.rkey, this.address, this.length.
Mr::Mr(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Mr>(info), Resource(info.Env(), kKind) {
  Napi::Env env = info.Env();
  Pd* pd = Arg<Pd>(env, info[0], "pd");
  if (!pd) return;
  if (!info[2].IsNumber() || !(info[1].IsNumber() || info[1].IsBuffer())) {
    Napi::TypeError::New(env, "MemoryRegion(pd, size | Buffer, access: number)").ThrowAsJavaScriptException();
    return;
  }
  Napi::Value buf = info[1].IsBuffer() ? info[1] : NewAligned(env, info[1].As<Napi::Number>().DoubleValue());
  if (env.IsExceptionPending()) return;
  auto b = buf.As<Napi::Buffer<uint8_t>>();
  int access = info[2].As<Napi::Number>().Int32Value();
  mr_ = ibv_reg_mr(pd->pd(), b.Data(), b.Length(), access);
  if (!mr_) {
    ThrowErrno(env, "ibv_reg_mr", errno ? errno : ENOMEM);
    return;
  }
  Napi::Object self = info.This().As<Napi::Object>();
  // The Buffer stays reachable through this.buffer while the MR object lives.
  self.Set("buffer", b);
  self.Set("lkey", Napi::Number::New(env, mr_->lkey));
  self.Set("rkey", Napi::Number::New(env, mr_->rkey));
  self.Set("address", Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(b.Data()))));
  self.Set("length", Napi::Number::New(env, static_cast<double>(b.Length())));
  pd_ = Napi::Persistent(info[0].As<Napi::Object>());
  AddParent(pd);
  Opened();
}

void Mr::Release() {
  if (mr_) ibv_dereg_mr(mr_);
  mr_ = nullptr;
  pd_.Reset();
}

Napi::Value Mr::CloseJs(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

}  // namespace rt
