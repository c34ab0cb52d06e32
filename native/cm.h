// RDMA/CM: an event channel watched on the env's loop, and the CM ids on it. Events are
// copied out and acked before JS sees them, so JS may destroy an id from inside its own
// event's callback (rdma_destroy_id waits for that id's events to be acked).
#pragma once
#include <rdma/rdma_cma.h>

#include <memory>

#include "common.h"

namespace rt {

class CmChannel : public Napi::ObjectWrap<CmChannel>, public Resource {
 public:
  static constexpr Kind kKind = Kind::CmChannel;
  static Napi::Function Init(Napi::Env env);
  explicit CmChannel(const Napi::CallbackInfo& info);
  ~CmChannel() override { Close(); }
  rdma_event_channel* channel() const { return channel_; }

 private:
  void Release() override;
  void OnReadable();
  Napi::Value CloseJs(const Napi::CallbackInfo& info);
  rdma_event_channel* channel_ = nullptr;
  std::unique_ptr<Poller> poller_;
  Napi::FunctionReference onEvent_;
  std::unique_ptr<Napi::AsyncContext> async_;
};

class CmId : public Napi::ObjectWrap<CmId>, public Resource {
 public:
  static constexpr Kind kKind = Kind::CmId;
  static Napi::Function Init(Napi::Env env);
  explicit CmId(const Napi::CallbackInfo& info);
  ~CmId() override { Close(); }
  rdma_cm_id* id() const { return id_; }

 private:
  friend class CmChannel;
  void Release() override;
  Napi::Value Bind(const Napi::CallbackInfo& info);
  Napi::Value Listen(const Napi::CallbackInfo& info);
  Napi::Value ResolveAddr(const Napi::CallbackInfo& info);
  Napi::Value ResolveRoute(const Napi::CallbackInfo& info);
  Napi::Value Connect(const Napi::CallbackInfo& info);
  Napi::Value Accept(const Napi::CallbackInfo& info);
  Napi::Value Reject(const Napi::CallbackInfo& info);
  Napi::Value Disconnect(const Napi::CallbackInfo& info);
  Napi::Value CloseJs(const Napi::CallbackInfo& info);
  Napi::Value LocalAddress(const Napi::CallbackInfo& info);
  Napi::Value RemoteAddress(const Napi::CallbackInfo& info);
  Napi::Value LocalPort(const Napi::CallbackInfo& info);
  Napi::Value RemotePort(const Napi::CallbackInfo& info);
  Napi::Value DeviceName(const Napi::CallbackInfo& info);
  rdma_cm_id* id_ = nullptr;
  Napi::ObjectReference channel_;
};

}  // namespace rt
