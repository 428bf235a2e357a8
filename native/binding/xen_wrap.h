// Xen's libraries and host information for src/xen/native.ts (xen_wrap.cc).
#pragma once

#include <napi.h>

namespace bulkhead {

void InitXen(Napi::Env env, Napi::Object exports);
// xenBuildPvDomain, xenBuildPvDomainAsync (xen_build.cc).
void InitXenBuild(Napi::Env env, Napi::Object exports);
// XenStoreHandle, EvtchnHandle, GntHandle, FdWatch (xen_handles.cc).
void InitXenHandles(Napi::Env env, Napi::Object exports);

}  // namespace bulkhead
