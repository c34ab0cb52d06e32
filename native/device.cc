#include "device.h"

#include <fcntl.h>
#include <rdma/rdma_cma.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>

namespace rt {

static std::string Hex64(uint64_t be) {
  char buf[17];
  snprintf(buf, sizeof buf, "%016" PRIx64, be64toh(be));
  return buf;
}

static const char* PortState(ibv_port_state s) {
  switch (s) {
    case IBV_PORT_DOWN: return "DOWN";
    case IBV_PORT_INIT: return "INIT";
    case IBV_PORT_ARMED: return "ARMED";
    case IBV_PORT_ACTIVE: return "ACTIVE";
    case IBV_PORT_ACTIVE_DEFER: return "ACTIVE_DEFER";
    default: return "NOP";
  }
}

static const char* LinkLayer(uint8_t l) {
  switch (l) {
    case IBV_LINK_LAYER_INFINIBAND: return "InfiniBand";
    case IBV_LINK_LAYER_ETHERNET: return "Ethernet";
    default: return "unspecified";
  }
}

// librdmacm owns the device contexts. Every rdma_get_devices() call re-syncs its list with
// the kernel's (rdma-core's sync_devices_list over ibv_get_device_list, which re-reads
// sysfs/netlink each call), opens arriving devices, marks vanished ones dead and closes a dead
// one once nothing references it; every list it returns holds one reference per device until
// rdma_free_devices. A Context keeps a reference to its own device only, so a removed device's
// context closes when its last Context and CM id are gone (docs/architecture.md, device
// lifecycle). One gap: when no device is left at all, librdmacm's sync gives up before marking
// anything dead and would keep the removed device's context (and with it the kernel's
// `rdma link del`) forever. For that case Sync() itself lets go of the kernel files of a
// vanished context no Context uses any more (Orphan below).
namespace {
struct Known {
  std::string name;
  int cmdFd;
  int asyncFd;
  int opens;  // open Context objects on it, in every environment
};
std::mutex g_mu;
std::map<ibv_context*, Known> g_known;

// Points the context's kernel file descriptors at /dev/null: the uverbs file is released (the
// kernel's device removal can finish) while the numbers stay owned by the context, so
// librdmacm's eventual ibv_close_device closes /dev/null instead of someone else's fd. Only
// for a context with no object of ours left on it.
void Orphan(const Known& k) {
  int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (nul < 0) return;
  if (k.cmdFd >= 0) dup3(nul, k.cmdFd, O_CLOEXEC);
  if (k.asyncFd >= 0) dup3(nul, k.asyncFd, O_CLOEXEC);
  close(nul);
}

// Calls fn(list, n) with a fresh librdmacm device list (n may be 0), then drops the list's
// references and settles the contexts of vanished devices. Caller holds g_mu.
template <class F>
void SyncLocked(F fn) {
  int n = 0;
  ibv_context** list = rdma_get_devices(&n);
  if (!list) n = 0;
  std::set<ibv_context*> present;
  for (int i = 0; i < n; i++) {
    present.insert(list[i]);
    auto it = g_known.find(list[i]);
    if (it == g_known.end())
      g_known[list[i]] = Known{ibv_get_device_name(list[i]->device), list[i]->cmd_fd, list[i]->async_fd, 0};
  }
  fn(list, n);
  if (list) rdma_free_devices(list);
  // An empty librdmacm list may also be a failed listing: orphan only when libibverbs,
  // asked on its own, lists no device either.
  bool none = false;
  if (n == 0) {
    int m = -1;
    ibv_device** all = ibv_get_device_list(&m);
    none = all && m == 0;
    if (all) ibv_free_device_list(all);
  }
  for (auto it = g_known.begin(); it != g_known.end();) {
    if (present.count(it->first)) {
      ++it;
    } else if (n > 0) {
      it = g_known.erase(it);  // marked dead by this sync: librdmacm closes it when unreferenced
    } else if (none && it->second.opens == 0) {
      Orphan(it->second);
      it = g_known.erase(it);
    } else {
      ++it;  // a Context still uses it: the sync after its close lets go
    }
  }
}
}  // namespace

Napi::Value SyncDevices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  std::lock_guard<std::mutex> lk(g_mu);
  SyncLocked([&](ibv_context** list, int n) {
    for (int i = 0; i < n; i++) out.Set(i, Napi::String::New(env, ibv_get_device_name(list[i]->device)));
  });
  return out;
}

Napi::Object DeviceInfo(Napi::Env env, ibv_context* ctx) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", ibv_get_device_name(ctx->device));
  ibv_device_attr a{};
  int err = ibv_query_device(ctx, &a);
  if (err) return o;
  o.Set("nodeGuid", Hex64(a.node_guid));
  o.Set("sysImageGuid", Hex64(a.sys_image_guid));
  o.Set("maxQpWr", a.max_qp_wr);
  o.Set("maxSge", a.max_sge);
  o.Set("maxCqe", a.max_cqe);
  o.Set("maxQpRdAtom", a.max_qp_rd_atom);
  o.Set("maxQpInitRdAtom", a.max_qp_init_rd_atom);
  o.Set("maxSrqWr", a.max_srq_wr);
  o.Set("maxMrSize", static_cast<double>(a.max_mr_size));
  Napi::Array ports = Napi::Array::New(env);
  for (uint8_t p = 1; p <= a.phys_port_cnt; p++) {
    ibv_port_attr pa{};
    if (ibv_query_port(ctx, p, &pa)) continue;
    Napi::Object po = Napi::Object::New(env);
    po.Set("port", p);
    po.Set("state", PortState(pa.state));
    po.Set("activeMtu", 128 << pa.active_mtu);
    po.Set("linkLayer", LinkLayer(pa.link_layer));
    Napi::Array gids = Napi::Array::New(env);
    for (int i = 0, k = 0; i < pa.gid_tbl_len && i < 16; i++) {
      ibv_gid g;
      if (ibv_query_gid(ctx, p, i, &g)) break;
      static const uint8_t zero[16] = {0};
      if (!memcmp(g.raw, zero, 16)) continue;
      char s[40];
      snprintf(s, sizeof s, "%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x", g.raw[0],
               g.raw[1], g.raw[2], g.raw[3], g.raw[4], g.raw[5], g.raw[6], g.raw[7], g.raw[8], g.raw[9], g.raw[10],
               g.raw[11], g.raw[12], g.raw[13], g.raw[14], g.raw[15]);
      Napi::Object go = Napi::Object::New(env);
      go.Set("index", i);
      go.Set("gid", s);
      gids.Set(k++, go);
    }
    po.Set("gids", gids);
    ports.Set(ports.Length(), po);
  }
  o.Set("ports", ports);
  return o;
}

Napi::Value ListDevices(const Napi::CallbackInfo& info) {
  Napi::Array out = Napi::Array::New(info.Env());
  std::lock_guard<std::mutex> lk(g_mu);
  SyncLocked([&](ibv_context** list, int n) {
    for (int i = 0; i < n; i++) out.Set(i, DeviceInfo(info.Env(), list[i]));
  });
  return out;
}

Napi::Function Context::Init(Napi::Env env) {
  return DefineClass(env, NamesOf(kKind).jsClass,
                     {InstanceAccessor<&Context::GetName>("name"), InstanceMethod<&Context::Query>("query"),
                      InstanceMethod<&Context::CloseJs>("close")});
}

// One watcher per device async fd, shared by every open Context on that device in one
// environment. Each environment has its own thread and loop, so a thread-local map is a
// per-env one: its pollers live on that env's loop and go with its last Context.
struct AsyncWatch {
  std::unique_ptr<Poller> poller;
  std::vector<Context*> contexts;
};
static thread_local std::map<ibv_context*, AsyncWatch> g_watches;

void DeliverAsyncEvents(void* arg) {
  ibv_context* ctx = static_cast<ibv_context*>(arg);
  ibv_async_event ev;
  for (;;) {
    auto it = g_watches.find(ctx);
    if (it == g_watches.end() || ibv_get_async_event(ctx, &ev)) return;
    int port = (ev.event_type == IBV_EVENT_PORT_ACTIVE || ev.event_type == IBV_EVENT_PORT_ERR ||
                ev.event_type == IBV_EVENT_LID_CHANGE || ev.event_type == IBV_EVENT_GID_CHANGE)
                   ? ev.element.port_num
                   : 0;
    const char* type = ibv_event_type_str(ev.event_type);
    ibv_ack_async_event(&ev);
    // A callback may close any Context (even the last, which deletes the watch): deliver
    // from a copy and skip those that were closed meanwhile.
    std::vector<Context*> targets = it->second.contexts;
    for (Context* c : targets) {
      auto w = g_watches.find(ctx);
      if (w == g_watches.end()) return;
      if (std::find(w->second.contexts.begin(), w->second.contexts.end(), c) != w->second.contexts.end())
        c->Deliver(type, port);
    }
  }
}

// new Context(name, onAsyncEvent(type: string, portNum: number))
Context::Context(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Context>(info), Resource(info.Env(), kKind) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "Context(name: string, onAsyncEvent: function)").ThrowAsJavaScriptException();
    return;
  }
  std::string name = info[0].As<Napi::String>();
  ibv_context* ctx = nullptr;
  {
    // Keep a reference to this device only: the list's references to the others are
    // dropped now, so holding this Context never keeps another device's context open.
    std::lock_guard<std::mutex> lk(g_mu);
    SyncLocked([&](ibv_context** list, int n) {
      for (int i = 0; i < n; i++)
        if (!ctx && name == ibv_get_device_name(list[i]->device)) ctx = list[i];
      if (!ctx) return;
      held_ = static_cast<ibv_context**>(calloc(2, sizeof *held_));
      if (!held_) {
        ctx = nullptr;
        return;
      }
      held_[0] = ctx;
      // rdma_get_devices() took one reference per listed device and SyncLocked's
      // rdma_free_devices drops them all: take ours again with a second list.
      int m = 0;
      ibv_context** again = rdma_get_devices(&m);
      if (!again) return;
      auto** others = static_cast<ibv_context**>(calloc(m + 1, sizeof(ibv_context*)));
      for (int i = 0, k = 0; others && i < m; i++)
        if (again[i] != ctx) others[k++] = again[i];
      free(again);                            // the array only: its references now live in `held_` and `others`
      if (others) rdma_free_devices(others);  // frees `others` too
      g_known[ctx].opens++;
    });
  }
  if (!ctx) {
    if (held_) free(held_);
    held_ = nullptr;
    ThrowCode(env, "ENODEV", "no RDMA device named '" + name + "'");
    return;
  }
  AsyncWatch& w = g_watches[ctx];
  if (!w.poller) {
    if (!SetNonBlocking(ctx->async_fd)) {
      g_watches.erase(ctx);
      ThrowErrno(env, "fcntl", errno);
      return;
    }
    w.poller = std::make_unique<Poller>(env, ctx->async_fd, DeliverAsyncEvents, ctx);
  }
  w.contexts.push_back(this);
  ctx_ = ctx;
  onEvent_ = Napi::Persistent(info[1].As<Napi::Function>());
  async_ = std::make_unique<Napi::AsyncContext>(env, "rdma-target:device");
  Opened();
}

void Context::Deliver(const char* type, int port) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  CallFromLoop(env, onEvent_, *async_, {Napi::String::New(env, type), Napi::Number::New(env, port)});
}

void Context::Release() {
  // The context itself belongs to librdmacm; our share of the watcher goes, then our
  // reference (which closes the context when its device is dead and this was the last).
  auto it = g_watches.find(ctx_);
  if (it != g_watches.end()) {
    auto& v = it->second.contexts;
    v.erase(std::remove(v.begin(), v.end(), this), v.end());
    if (v.empty()) g_watches.erase(it);  // stops the poll handle (freed in uv_close's callback)
  }
  if (held_) {
    std::lock_guard<std::mutex> lk(g_mu);
    auto k = g_known.find(ctx_);
    if (k != g_known.end() && k->second.opens > 0) k->second.opens--;
    rdma_free_devices(held_);
    held_ = nullptr;
  }
  ctx_ = nullptr;
}

Napi::Value Context::GetName(const Napi::CallbackInfo& info) {
  return ctx_ ? Napi::String::New(info.Env(), ibv_get_device_name(ctx_->device)) : info.Env().Null();
}

Napi::Value Context::Query(const Napi::CallbackInfo& info) {
  if (!CheckOpen(info.Env())) return info.Env().Undefined();
  return DeviceInfo(info.Env(), ctx_);
}

Napi::Value Context::CloseJs(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

}  // namespace rt
