#include "pd.h"

#include "device.h"

namespace rt {

Napi::FunctionReference Pd::ctor;

Napi::Function Pd::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "ProtectionDomain", {InstanceMethod<&Pd::CloseJs>("close")});
  ctor = Napi::Persistent(f);
  ctor.SuppressDestruct();  // static: must not be deleted after the env is gone
  return f;
}

Pd* Pd::From(Napi::Env env, Napi::Value v) {
  if (v.IsObject() && v.As<Napi::Object>().InstanceOf(ctor.Value())) {
    Pd* pd = Unwrap(v.As<Napi::Object>());
    if (pd->pd_) return pd;
    ThrowCode(env, "ERR_CLOSED", "the protection domain is closed");
    return nullptr;
  }
  Napi::TypeError::New(env, "expected a ProtectionDomain").ThrowAsJavaScriptException();
  return nullptr;
}

// new ProtectionDomain(context)
Pd::Pd(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Pd>(info), Resource(Kind::Pd) {
  Napi::Env env = info.Env();
  Context* c = Context::From(env, info[0]);
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
