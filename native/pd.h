// Protection domain on a device context.
#pragma once
#include <infiniband/verbs.h>

#include "common.h"

namespace rt {

class Pd : public Napi::ObjectWrap<Pd>, public Resource {
 public:
  static constexpr Kind kKind = Kind::Pd;
  static Napi::Function Init(Napi::Env env);
  explicit Pd(const Napi::CallbackInfo& info);
  ~Pd() override { Close(); }
  ibv_pd* pd() const { return pd_; }

 private:
  void Release() override;
  Napi::Value CloseJs(const Napi::CallbackInfo& info);
  ibv_pd* pd_ = nullptr;
  Napi::ObjectReference context_;
};

}  // namespace rt
