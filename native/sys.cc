#include "sys.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace rt {

static bool Ints(const Napi::CallbackInfo& info, size_t n, const char* usage) {
  for (size_t i = 0; i < n; i++)
    if (!info[i].IsNumber()) {
      Napi::TypeError::New(info.Env(), usage).ThrowAsJavaScriptException();
      return false;
    }
  return true;
}

static int64_t I64(const Napi::Value& v) { return v.As<Napi::Number>().Int64Value(); }

// punchHole(fd, offset, length): deallocates the range; later reads return zeroes.
Napi::Value PunchHole(const Napi::CallbackInfo& info) {
  if (!Ints(info, 3, "punchHole(fd, offset, length)")) return info.Env().Undefined();
  if (fallocate(static_cast<int>(I64(info[0])), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, I64(info[1]), I64(info[2])))
    ThrowErrno(info.Env(), "fallocate", errno);
  return info.Env().Undefined();
}

// seekData/seekHole(fd, offset) → the next data/hole offset at or after `offset`, or -1
// when there is none (ENXIO: past the last data).
static Napi::Value Seek(const Napi::CallbackInfo& info, int whence) {
  if (!Ints(info, 2, "seekData/seekHole(fd, offset)")) return info.Env().Undefined();
  off_t r = lseek(static_cast<int>(I64(info[0])), I64(info[1]), whence);
  if (r < 0) {
    if (errno == ENXIO) return Napi::Number::New(info.Env(), -1);
    ThrowErrno(info.Env(), "lseek", errno);
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), static_cast<double>(r));
}
Napi::Value SeekData(const Napi::CallbackInfo& info) { return Seek(info, SEEK_DATA); }
Napi::Value SeekHole(const Napi::CallbackInfo& info) { return Seek(info, SEEK_HOLE); }

// blockDeviceInfo(fd) → { sizeBytes, logicalBlockSize }
Napi::Value BlockDeviceInfo(const Napi::CallbackInfo& info) {
  if (!Ints(info, 1, "blockDeviceInfo(fd)")) return info.Env().Undefined();
  int fd = static_cast<int>(I64(info[0]));
  uint64_t size = 0;
  int lbs = 0;
  if (ioctl(fd, BLKGETSIZE64, &size)) {
    ThrowErrno(info.Env(), "ioctl(BLKGETSIZE64)", errno);
    return info.Env().Undefined();
  }
  if (ioctl(fd, BLKSSZGET, &lbs)) {
    ThrowErrno(info.Env(), "ioctl(BLKSSZGET)", errno);
    return info.Env().Undefined();
  }
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("sizeBytes", static_cast<double>(size));
  o.Set("logicalBlockSize", lbs);
  return o;
}

}  // namespace rt
