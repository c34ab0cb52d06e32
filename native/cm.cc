#include "cm.h"

#include <arpa/inet.h>
#include <netdb.h>

namespace rt {

static std::string AddrString(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (!sa) return buf;
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof buf);
  return buf;
}

// Parses a numeric IPv4/IPv6 address (no name lookup: it would block the loop).
static bool ParseAddr(const std::string& s, int port, sockaddr_storage* out) {
  memset(out, 0, sizeof *out);
  auto* in4 = reinterpret_cast<sockaddr_in*>(out);
  if (inet_pton(AF_INET, s.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(static_cast<uint16_t>(port));
    return true;
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(out);
  if (inet_pton(AF_INET6, s.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    return true;
  }
  return false;
}

// ---------------------------------------------------------------- channel

Napi::Function CmChannel::Init(Napi::Env env) {
  return DefineClass(env, NamesOf(kKind).jsClass, {InstanceMethod<&CmChannel::CloseJs>("close")});
}

// new CmEventChannel(onEvent(event))
CmChannel::CmChannel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CmChannel>(info), Resource(info.Env(), kKind) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) {
    Napi::TypeError::New(env, "CmEventChannel(onEvent: function)").ThrowAsJavaScriptException();
    return;
  }
  channel_ = rdma_create_event_channel();
  if (!channel_) {
    ThrowErrno(env, "rdma_create_event_channel", errno);
    return;
  }
  if (!SetNonBlocking(channel_->fd)) {
    ThrowErrno(env, "fcntl", errno);
    return;
  }
  onEvent_ = Napi::Persistent(info[0].As<Napi::Function>());
  async_ = std::make_unique<Napi::AsyncContext>(env, "rdma-target:cm");
  poller_ = std::make_unique<Poller>(
      env, channel_->fd, [](void* self) { static_cast<CmChannel*>(self)->OnReadable(); }, this);
  Opened();
}

void CmChannel::OnReadable() {
  Napi::Env env = Env();
  rdma_cm_event* ev;
  while (!closed() && rdma_get_cm_event(channel_, &ev) == 0) {
    Napi::HandleScope scope(env);
    Napi::Object o = Napi::Object::New(env);
    o.Set("type", rdma_event_str(ev->event));
    o.Set("status", ev->status);
    const rdma_conn_param& p = ev->param.conn;
    if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST || ev->event == RDMA_CM_EVENT_ESTABLISHED ||
        ev->event == RDMA_CM_EVENT_REJECTED || ev->event == RDMA_CM_EVENT_CONNECT_RESPONSE) {
      o.Set("privateData", Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(p.private_data),
                                                       p.private_data ? p.private_data_len : 0));
      o.Set("initiatorDepth", p.initiator_depth);
      o.Set("responderResources", p.responder_resources);
    }
    if (ev->id) {
      // Copied now: once acked, a DISCONNECTED id may be destroyed before JS looks.
      o.Set("localAddress", AddrString(rdma_get_local_addr(ev->id)));
      o.Set("remoteAddress", AddrString(rdma_get_peer_addr(ev->id)));
      o.Set("localPort", ntohs(rdma_get_src_port(ev->id)));
      o.Set("remotePort", ntohs(rdma_get_dst_port(ev->id)));
      if (ev->id->verbs) o.Set("deviceName", ibv_get_device_name(ev->id->verbs->device));
    }
    bool reject = false;
    if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST) {
      // A new id for the incoming connection, owned by this channel like every other id.
      Napi::MaybeOrValue<Napi::Object> made =
          module()->Class(Kind::CmId).New({Value(), Napi::External<rdma_cm_id>::New(env, ev->id)});
      if (env.IsExceptionPending()) {
        // Could not wrap it (out of memory): refuse the connection rather than leak the id.
        env.GetAndClearPendingException();
        reject = true;
      } else {
        o.Set("id", made);
        if (ev->listen_id && ev->listen_id->context)
          o.Set("listener", static_cast<CmId*>(ev->listen_id->context)->Value());
      }
    } else if (ev->id && ev->id->context) {
      o.Set("id", static_cast<CmId*>(ev->id->context)->Value());
    }
    rdma_cm_id* refused = reject ? ev->id : nullptr;
    // Ack before JS runs: JS may destroy the id, which waits for its events to be acked.
    rdma_ack_cm_event(ev);
    if (refused) {
      rdma_reject(refused, nullptr, 0);
      rdma_destroy_id(refused);
      continue;
    }
    CallFromLoop(env, onEvent_, *async_, {o});
  }
}

void CmChannel::Release() {
  poller_.reset();
  if (channel_) rdma_destroy_event_channel(channel_);
  channel_ = nullptr;
}

Napi::Value CmChannel::CloseJs(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

// ---------------------------------------------------------------- ids

Napi::Function CmId::Init(Napi::Env env) {
  return DefineClass(
      env, NamesOf(kKind).jsClass,
      {InstanceMethod<&CmId::Bind>("bind"), InstanceMethod<&CmId::Listen>("listen"),
       InstanceMethod<&CmId::ResolveAddr>("resolveAddr"), InstanceMethod<&CmId::ResolveRoute>("resolveRoute"),
       InstanceMethod<&CmId::Connect>("connect"), InstanceMethod<&CmId::Accept>("accept"),
       InstanceMethod<&CmId::Reject>("reject"), InstanceMethod<&CmId::Disconnect>("disconnect"),
       InstanceMethod<&CmId::CloseJs>("close"), InstanceAccessor<&CmId::LocalAddress>("localAddress"),
       InstanceAccessor<&CmId::RemoteAddress>("remoteAddress"), InstanceAccessor<&CmId::LocalPort>("localPort"),
       InstanceAccessor<&CmId::RemotePort>("remotePort"), InstanceAccessor<&CmId::DeviceName>("deviceName")});
}

// new CmId(channel) — or, from CmChannel only, new CmId(channel, External<rdma_cm_id>).
// An open id keeps its JS object alive (events must reach it) until close().
CmId::CmId(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CmId>(info), Resource(info.Env(), kKind) {
  Napi::Env env = info.Env();
  CmChannel* ch = Arg<CmChannel>(env, info[0], "channel");
  if (!ch) return;
  if (info[1].IsExternal()) {
    id_ = info[1].As<Napi::External<rdma_cm_id>>().Data();
    id_->context = this;
  } else if (rdma_create_id(ch->channel(), &id_, this, RDMA_PS_TCP)) {
    id_ = nullptr;
    ThrowErrno(env, "rdma_create_id", errno);
    return;
  }
  channel_ = Napi::Persistent(info[0].As<Napi::Object>());
  Ref();
  AddParent(ch);
  Opened();
}

void CmId::Release() {
  if (id_) {
    if (id_->qp) rdma_destroy_qp(id_);  // normally already gone with the QueuePair child
    rdma_destroy_id(id_);
    id_ = nullptr;
    Unref();
  }
  channel_.Reset();
}

static Napi::Value Done(const Napi::CallbackInfo& info, int rc, const char* call) {
  if (rc) ThrowErrno(info.Env(), call, errno);
  return info.Env().Undefined();
}

// bind(address, port)
Napi::Value CmId::Bind(const Napi::CallbackInfo& info) {
  if (!CheckOpen(info.Env())) return info.Env().Undefined();
  sockaddr_storage sa;
  if (!info[0].IsString() || !ParseAddr(info[0].As<Napi::String>(), info[1].ToNumber().Int32Value(), &sa)) {
    ThrowCode(info.Env(), "EINVAL", "bind: address must be a numeric IPv4 or IPv6 address");
    return info.Env().Undefined();
  }
  return Done(info, rdma_bind_addr(id_, reinterpret_cast<sockaddr*>(&sa)), "rdma_bind_addr");
}

Napi::Value CmId::Listen(const Napi::CallbackInfo& info) {
  if (!CheckOpen(info.Env())) return info.Env().Undefined();
  int backlog = 128;
  if (!OptionalUint(info.Env(), info[0], "backlog", &backlog)) return info.Env().Undefined();
  return Done(info, rdma_listen(id_, backlog), "rdma_listen");
}

// resolveAddr(dstAddress, dstPort, timeoutMs, srcAddress?) → ADDR_RESOLVED / ADDR_ERROR event
Napi::Value CmId::ResolveAddr(const Napi::CallbackInfo& info) {
  if (!CheckOpen(info.Env())) return info.Env().Undefined();
  sockaddr_storage dst, src;
  bool haveSrc = info[3].IsString();
  if (!info[0].IsString() || !ParseAddr(info[0].As<Napi::String>(), info[1].ToNumber().Int32Value(), &dst) ||
      (haveSrc && !ParseAddr(info[3].As<Napi::String>(), 0, &src))) {
    ThrowCode(info.Env(), "EINVAL", "resolveAddr: addresses must be numeric IPv4 or IPv6 addresses");
    return info.Env().Undefined();
  }
  int timeout = 2000;
  if (!OptionalUint(info.Env(), info[2], "timeoutMs", &timeout)) return info.Env().Undefined();
  return Done(info,
              rdma_resolve_addr(id_, haveSrc ? reinterpret_cast<sockaddr*>(&src) : nullptr,
                                reinterpret_cast<sockaddr*>(&dst), timeout),
              "rdma_resolve_addr");
}

Napi::Value CmId::ResolveRoute(const Napi::CallbackInfo& info) {
  if (!CheckOpen(info.Env())) return info.Env().Undefined();
  int timeout = 2000;
  if (!OptionalUint(info.Env(), info[0], "timeoutMs", &timeout)) return info.Env().Undefined();
  return Done(info, rdma_resolve_route(id_, timeout), "rdma_resolve_route");
}

// Connection parameters from { privateData?, initiatorDepth?, responderResources?,
// retryCount?, rnrRetryCount? }; private data is copied by librdmacm during the call.
// False with a pending TypeError when a field is of the wrong type.
static bool ConnParam(Napi::Env env, Napi::Value v, rdma_conn_param* p, Napi::Buffer<uint8_t>* keep) {
  memset(p, 0, sizeof *p);
  p->retry_count = 7;
  p->rnr_retry_count = 7;
  p->initiator_depth = 1;
  p->responder_resources = 1;
  if (!Options(env, v)
           .Uint("initiatorDepth", &p->initiator_depth)
           .Uint("responderResources", &p->responder_resources)
           .Uint("retryCount", &p->retry_count)
           .Uint("rnrRetryCount", &p->rnr_retry_count)
           .Buffer("privateData", keep)
           .ok())
    return false;
  if (!keep->IsEmpty()) {
    p->private_data = keep->Data();
    p->private_data_len = static_cast<uint8_t>(std::min<size_t>(keep->Length(), 255));
  }
  return true;
}

Napi::Value CmId::Connect(const Napi::CallbackInfo& info) {
  if (!CheckOpen(info.Env())) return info.Env().Undefined();
  rdma_conn_param p;
  Napi::Buffer<uint8_t> keep;
  if (!ConnParam(info.Env(), info[0], &p, &keep)) return info.Env().Undefined();
  return Done(info, rdma_connect(id_, &p), "rdma_connect");
}

Napi::Value CmId::Accept(const Napi::CallbackInfo& info) {
  if (!CheckOpen(info.Env())) return info.Env().Undefined();
  rdma_conn_param p;
  Napi::Buffer<uint8_t> keep;
  if (!ConnParam(info.Env(), info[0], &p, &keep)) return info.Env().Undefined();
  return Done(info, rdma_accept(id_, &p), "rdma_accept");
}

Napi::Value CmId::Reject(const Napi::CallbackInfo& info) {
  if (!CheckOpen(info.Env())) return info.Env().Undefined();
  const void* data = nullptr;
  uint8_t len = 0;
  if (info[0].IsBuffer()) {
    auto b = info[0].As<Napi::Buffer<uint8_t>>();
    data = b.Data();
    len = static_cast<uint8_t>(std::min<size_t>(b.Length(), 255));
  }
  return Done(info, rdma_reject(id_, data, len), "rdma_reject");
}

Napi::Value CmId::Disconnect(const Napi::CallbackInfo& info) {
  if (!CheckOpen(info.Env())) return info.Env().Undefined();
  // EINVAL here means "not connected (any more)": disconnecting twice is not an error.
  if (rdma_disconnect(id_) && errno != EINVAL) ThrowErrno(info.Env(), "rdma_disconnect", errno);
  return info.Env().Undefined();
}

Napi::Value CmId::CloseJs(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

Napi::Value CmId::LocalAddress(const Napi::CallbackInfo& info) {
  return id_ ? Napi::String::New(info.Env(), AddrString(rdma_get_local_addr(id_))) : info.Env().Null();
}
Napi::Value CmId::RemoteAddress(const Napi::CallbackInfo& info) {
  return id_ ? Napi::String::New(info.Env(), AddrString(rdma_get_peer_addr(id_))) : info.Env().Null();
}
Napi::Value CmId::LocalPort(const Napi::CallbackInfo& info) {
  return id_ ? Napi::Number::New(info.Env(), ntohs(rdma_get_src_port(id_))) : info.Env().Null();
}
Napi::Value CmId::RemotePort(const Napi::CallbackInfo& info) {
  return id_ ? Napi::Number::New(info.Env(), ntohs(rdma_get_dst_port(id_))) : info.Env().Null();
}
Napi::Value CmId::DeviceName(const Napi::CallbackInfo& info) {
  return id_ && id_->verbs ? Napi::String::New(info.Env(), ibv_get_device_name(id_->verbs->device)) : info.Env().Null();
}

}  // namespace rt
