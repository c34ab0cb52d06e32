// Memory regions over natively allocated, page-aligned memory that JS sees as a Buffer.
// The memory is freed by the Buffer's finalizer, never by close(): deregistering leaves
// the bytes valid for any view JS still holds, so close() can never cause a use after free.
#pragma once
#include <infiniband/verbs.h>

#include "common.h"

namespace rt {

// A page-aligned external Buffer of `size` bytes, zero-filled, freed when unreachable.
Napi::Value AllocAligned(const Napi::CallbackInfo& info);

class Mr : public Napi::ObjectWrap<Mr>, public Resource {
 public:
  static constexpr Kind kKind = Kind::Mr;
  static Napi::Function Init(Napi::Env env);
  explicit Mr(const Napi::CallbackInfo& info);
  ~Mr() override { Close(); }

 private:
  void Release() override;
  Napi::Value CloseJs(const Napi::CallbackInfo& info);
  ibv_mr* mr_ = nullptr;
  Napi::ObjectReference pd_;
};

}  // namespace rt
