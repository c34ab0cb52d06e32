#include "pd.h"

#include "device.h"

namespace rt {

Napi::Function Pd::Init(Napi::Env env) {
  return DefineClass(env, NamesOf(kKind).jsClass, {InstanceMethod<&Pd::CloseJs>("close")});
}

// new ProtectionDomain(context)
Pd::Pd(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Pd>(info), Resource(info.Env(), kKind) {
  Napi::Env env = info.Env();
  Context* c = Arg<Context>(env, info[0], "context");
  if (!c) return;
  pd_ = ibv_alloc_pd(c->ctx());
  if (!pd_) {
    ThrowErrno(env, "ibv_alloc_pd", errno ? errno : ENOMEM);
    return;
  }
  context_ = Napi::Persistent(info[0].As<Napi::Object>());
  AddParent(c);
  Opened();
}

void Pd::Release() {
  if (pd_) ibv_dealloc_pd(pd_);
  pd_ = nullptr;
  context_.Reset();
}

Napi::Value Pd::CloseJs(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

}  // namespace rt
