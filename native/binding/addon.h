// Per-environment state of the addon and the classes it exports.
#pragma once

#include <napi.h>

namespace bulkhead {

struct AddonData {
    Napi::FunctionReference kvm_ctor;
    Napi::FunctionReference vm_ctor;
};

void InitKvm(Napi::Env env, Napi::Object exports, AddonData *data);
void InitVm(Napi::Env env, Napi::Object exports, AddonData *data);
void InitHostChecks(Napi::Env env, Napi::Object exports);

}  // namespace bulkhead
