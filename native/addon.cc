// Module entry: registers the object families and an env cleanup hook that closes every
// resource still open, children before parents, so exit never depends on GC.
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

static Napi::Value LiveObjects(const Napi::CallbackInfo& info) {
  static const char* names[] = {"contexts", "pds", "mrs", "cqs", "srqs", "qps", "cmChannels", "cmIds"};
  Napi::Object o = Napi::Object::New(info.Env());
  for (int k = 0; k < static_cast<int>(Kind::Count); k++) o.Set(names[k], LiveCount(static_cast<Kind>(k)));
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

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Context", Context::Init(env));
  exports.Set("ProtectionDomain", Pd::Init(env));
  exports.Set("MemoryRegion", Mr::Init(env));
  exports.Set("CompletionQueue", Cq::Init(env));
  exports.Set("SharedReceiveQueue", Srq::Init(env));
  exports.Set("QueuePair", Qp::Init(env));
  exports.Set("CmEventChannel", CmChannel::Init(env));
  exports.Set("CmId", CmId::Init(env));
  exports.Set("listDevices", Napi::Function::New(env, ListDevices));
  exports.Set("allocAligned", Napi::Function::New(env, AllocAligned));
  exports.Set("liveObjects", Napi::Function::New(env, LiveObjects));
  exports.Set("wcStatusName", Napi::Function::New(env, WcStatusName));
  exports.Set("punchHole", Napi::Function::New(env, PunchHole));
  exports.Set("seekData", Napi::Function::New(env, SeekData));
  exports.Set("seekHole", Napi::Function::New(env, SeekHole));
  exports.Set("blockDeviceInfo", Napi::Function::New(env, BlockDeviceInfo));
  exports.Set("constants", Constants(env));
  napi_add_env_cleanup_hook(env, [](void*) { CloseAll(); }, nullptr);
  return exports;
}

}  // namespace rt

static Napi::Object InitAll(Napi::Env env, Napi::Object exports) { return rt::Init(env, exports); }
NODE_API_MODULE(rdma_target, InitAll)
