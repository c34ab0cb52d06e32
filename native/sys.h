// System calls the file and block backstores need and Node does not offer: hole punching
// and hole/data seeking for thin files, and a block device's size and logical block size.
#pragma once
#include "common.h"

namespace rt {
Napi::Value PunchHole(const Napi::CallbackInfo& info);
Napi::Value SeekData(const Napi::CallbackInfo& info);
Napi::Value SeekHole(const Napi::CallbackInfo& info);
Napi::Value BlockDeviceInfo(const Napi::CallbackInfo& info);
}  // namespace rt
