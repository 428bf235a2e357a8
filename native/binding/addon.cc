// The addon's entry point: the exports the TypeScript layer (src/kvm/native.ts) builds on.
//   Kvm, Vm                         classes over bh_kvm / bh_vm (kvm_wrap.cc, vm_wrap.cc)
//   probeKvm, dlopenCheck, vsockCheck, eventfdTryRead, eventfdWrite   (host_checks.cc)
//   linux                           Linux boot and legacy devices (linux_wrap.cc)
//   Machine, machineConstants       the machine builder: a zone VM with its devices (machine_wrap.cc)
//   xenLibraries, xenHostInfo       Xen's libraries (dlopen) and the host through libxenctrl (xen_wrap.cc)
//   xenBuildPvDomain[Async]         our PV domain build, sync or on the thread pool (xen_build.cc)
//   constants                       the core's enums, so TypeScript does not restate them by hand
#include <napi.h>

#include "addon.h"
#include "linux_wrap.h"
#include "machine_wrap.h"
#include "xen_wrap.h"

extern "C" {
#include "bulkhead.h"
}

namespace bulkhead {

static Napi::Object Constants(Napi::Env env) {
    Napi::Object c = Napi::Object::New(env);
#define C(name) c.Set(#name, Napi::Number::New(env, static_cast<double>(name)));
    C(BH_VM_CREATED) C(BH_VM_RUNNING) C(BH_VM_PAUSED) C(BH_VM_STOPPED)
    C(BH_EXIT_HLT) C(BH_EXIT_SHUTDOWN) C(BH_EXIT_SYSTEM_EVENT) C(BH_EXIT_FAIL_ENTRY) C(BH_EXIT_INTERNAL_ERROR)
    C(BH_EXIT_IO_ERROR) C(BH_EXIT_UNKNOWN) C(BH_EXIT_RUN_FAILED) C(BH_EXIT_STOPPED) C(BH_EXIT_GUEST_REQUEST)
    C(BH_EXIT_DEVICE_FAILURE)
    C(BH_MMIO_HOLE_START) C(BH_MMIO_HOLE_END) C(BH_MAX_VCPUS_HARD_LIMIT)
#undef C
    c.Set("kickSignal", Napi::Number::New(env, bh_vcpu_kick_signal()));
    return c;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    AddonData *data = new AddonData();
    env.SetInstanceData<AddonData>(data);
    InitKvm(env, exports, data);
    InitVm(env, exports, data);
    InitHostChecks(env, exports);
    InitLinux(env, exports);
    InitMachine(env, exports);
    InitXen(env, exports);
    InitXenBuild(env, exports);
    InitXenHandles(env, exports);
    exports.Set("constants", Constants(env));
    return exports;
}

}  // namespace bulkhead

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return bulkhead::Init(env, exports); }

NODE_API_MODULE(bulkhead, InitAddon)
