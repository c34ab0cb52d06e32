// Devices and their contexts. Contexts come from librdmacm's rdma_get_devices(), the same
// ibv_context objects that CM ids bind to, so a PD made here can carry QPs of any CM id
// on that device. librdmacm owns them; a Context holds a reference to its device (so it
// stays open while our objects are on it) and watches its async events. Several Context
// objects may open one device: in each environment they share one watcher of its async fd
// (libuv allows one poll handle per fd on a loop) and each receives every async event.
#pragma once
#include <infiniband/verbs.h>

#include <memory>

#include "common.h"

namespace rt {

Napi::Value ListDevices(const Napi::CallbackInfo& info);
// Names of the devices present now; re-syncs librdmacm's list (closing what it can of
// vanished devices). Cheap enough to call on a timer.
Napi::Value SyncDevices(const Napi::CallbackInfo& info);

class Context : public Napi::ObjectWrap<Context>, public Resource {
 public:
  static constexpr Kind kKind = Kind::Context;
  static Napi::Function Init(Napi::Env env);
  explicit Context(const Napi::CallbackInfo& info);
  ~Context() override { Close(); }
  ibv_context* ctx() const { return ctx_; }

 private:
  friend void DeliverAsyncEvents(void* ctx);
  void Release() override;
  void Deliver(const char* type, int port);
  Napi::Value GetName(const Napi::CallbackInfo& info);
  Napi::Value Query(const Napi::CallbackInfo& info);
  Napi::Value CloseJs(const Napi::CallbackInfo& info);
  ibv_context* ctx_ = nullptr;
  // A one-entry librdmacm device list: our reference to the device, freed in Release().
  ibv_context** held_ = nullptr;
  Napi::FunctionReference onEvent_;
  std::unique_ptr<Napi::AsyncContext> async_;
};

Napi::Object DeviceInfo(Napi::Env env, ibv_context* ctx);

}  // namespace rt
