// Module entry: registers the object families in the env's Module (common.h), whose env
// cleanup hook closes every resource of that env still open, children before parents, so
// exit (of the process or of a worker thread) never depends on GC.
#include <infiniband/verbs.h>

#include "cm.h"
#include "common.h"
#include "cq.h"
#include "device.h"
#include "mr.h"
#include "pd.h"
#include "qp.h"
#include "sys.h"

namespace rt {

// Live (open) resources of this env per kind, for leak checks.
static Napi::Value LiveObjects(const Napi::CallbackInfo& info) {
  Module* m = Module::Of(info.Env());
  Napi::Object o = Napi::Object::New(info.Env());
  for (int k = 0; k < static_cast<int>(Kind::Count); k++)
    o.Set(NamesOf(static_cast<Kind>(k)).liveKey, m->LiveCount(static_cast<Kind>(k)));
  return o;
}

static Napi::Value WcStatusName(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), ibv_wc_status_str(static_cast<ibv_wc_status>(info[0].ToNumber().Int32Value())));
}

static Napi::Object Constants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  c.Set("ACCESS_LOCAL_WRITE", static_cast<int>(IBV_ACCESS_LOCAL_WRITE));
  c.Set("ACCESS_REMOTE_WRITE", static_cast<int>(IBV_ACCESS_REMOTE_WRITE));
  c.Set("ACCESS_REMOTE_READ", static_cast<int>(IBV_ACCESS_REMOTE_READ));
  c.Set("WR_RDMA_WRITE", static_cast<int>(IBV_WR_RDMA_WRITE));
  c.Set("WR_RDMA_WRITE_WITH_IMM", static_cast<int>(IBV_WR_RDMA_WRITE_WITH_IMM));
  c.Set("WR_SEND", static_cast<int>(IBV_WR_SEND));
  c.Set("WR_SEND_WITH_IMM", static_cast<int>(IBV_WR_SEND_WITH_IMM));
  c.Set("WR_RDMA_READ", static_cast<int>(IBV_WR_RDMA_READ));
  c.Set("WR_SEND_WITH_INV", static_cast<int>(IBV_WR_SEND_WITH_INV));
  c.Set("SEND_FENCE", static_cast<int>(IBV_SEND_FENCE));
  c.Set("SEND_SIGNALED", static_cast<int>(IBV_SEND_SIGNALED));
  c.Set("SEND_SOLICITED", static_cast<int>(IBV_SEND_SOLICITED));
  c.Set("SEND_INLINE", static_cast<int>(IBV_SEND_INLINE));
  c.Set("WC_SEND", static_cast<int>(IBV_WC_SEND));
  c.Set("WC_RDMA_WRITE", static_cast<int>(IBV_WC_RDMA_WRITE));
  c.Set("WC_RDMA_READ", static_cast<int>(IBV_WC_RDMA_READ));
  c.Set("WC_RECV", static_cast<int>(IBV_WC_RECV));
  c.Set("WC_RECV_RDMA_WITH_IMM", static_cast<int>(IBV_WC_RECV_RDMA_WITH_IMM));
  c.Set("WC_WITH_IMM", static_cast<int>(IBV_WC_WITH_IMM));
  c.Set("WC_WITH_INV", static_cast<int>(IBV_WC_WITH_INV));
  c.Set("WC_SUCCESS", static_cast<int>(IBV_WC_SUCCESS));
  c.Set("WC_WR_FLUSH_ERR", static_cast<int>(IBV_WC_WR_FLUSH_ERR));
  c.Set("WC_REM_ACCESS_ERR", static_cast<int>(IBV_WC_REM_ACCESS_ERR));
  c.Set("CQ_RECORD_BYTES", static_cast<int>(kWords * 4));
  c.Set("MAX_SGE_PER_WR", kMaxSgePerWr);
  return c;
}

// Exports the class and records its constructor in the env's Module for Arg<T>().
template <class T>
static void AddClass(Napi::Env env, Module* m, Napi::Object exports) {
  Napi::Function f = T::Init(env);
  m->SetClass(T::kKind, f);
  exports.Set(NamesOf(T::kKind).jsClass, f);
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Module* m = Module::Load(env);
  AddClass<Context>(env, m, exports);
  AddClass<Pd>(env, m, exports);
  AddClass<Mr>(env, m, exports);
  AddClass<Cq>(env, m, exports);
  AddClass<Srq>(env, m, exports);
  AddClass<Qp>(env, m, exports);
  AddClass<CmChannel>(env, m, exports);
  AddClass<CmId>(env, m, exports);
  exports.Set("listDevices", Napi::Function::New(env, ListDevices));
  exports.Set("syncDevices", Napi::Function::New(env, SyncDevices));
  exports.Set("allocAligned", Napi::Function::New(env, AllocAligned));
  exports.Set("liveObjects", Napi::Function::New(env, LiveObjects));
  exports.Set("wcStatusName", Napi::Function::New(env, WcStatusName));
  exports.Set("punchHole", Napi::Function::New(env, PunchHole));
  exports.Set("seekData", Napi::Function::New(env, SeekData));
  exports.Set("seekHole", Napi::Function::New(env, SeekHole));
  exports.Set("blockDeviceInfo", Napi::Function::New(env, BlockDeviceInfo));
  exports.Set("constants", Constants(env));
  return exports;
}

}  // namespace rt

static Napi::Object InitAll(Napi::Env env, Napi::Object exports) { return rt::Init(env, exports); }
NODE_API_MODULE(rdma_target, InitAll)
