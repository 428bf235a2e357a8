// The Vm class: one bh_vm, its vCPU threads' messages to JavaScript, and its lifecycle workers.
//
// Threads: vCPU threads (owned by the core) call the exit/state callbacks and the I/O trampoline; these
// only copy their data into a Message and post it through one ThreadSafeFunction per VM. The JavaScript
// thread receives the messages in order. Blocking operations (stop, pause, destroy) run on libuv's
// thread pool (Napi::AsyncWorker) and resolve a promise.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <napi.h>
#include <vector>

#include "kvm_wrap.h"

extern "C" {
#include "bulkhead.h"
}

namespace bulkhead {

struct VmCore;

enum class MessageKind { Exit, State, Io, Custom };

struct Message {
    MessageKind kind;
    bh_vcpu_exit exit;
    bh_vm_state state;
    uint32_t handler_id;
    uint64_t seq;
    bh_io_access access;
    std::function<void(Napi::Env)> custom; // MessageKind::Custom: run on the JavaScript thread
};

void CallJs(Napi::Env env, Napi::Function callback, VmCore *core, Message *message);
void FinalizeCore(Napi::Env env, void *unused, VmCore *core);

using MessageTsfn = Napi::TypedThreadSafeFunction<VmCore, Message, CallJs>;

// The opaque pointer given to the core for one registered I/O range.
struct IoSlot {
    VmCore *core;
    uint32_t handler_id;
};

// Device models other parts of the binding attach to a VM (linux_wrap.cc). The core owns the devices themselves
// and frees them in bh_vm_destroy (bulkhead.h, "Devices the VM owns"); an extension keeps only what JavaScript may
// still read afterwards, copied in BeforeVmDestroy (called right before bh_vm_destroy, with no vCPU running).
struct VmExtension {
    virtual ~VmExtension() = default;
    virtual void BeforeVmDestroy() {}
};

// Shared between the JavaScript object, the vCPU threads and the workers. Freed by the ThreadSafeFunction's
// finalizer, which runs after destroy released it and every queued message was delivered.
struct VmCore {
    bh_vm *vm = nullptr;
    KvmRef *kvm = nullptr;
    uint32_t vcpus = 0;
    MessageTsfn tsfn;
    bool tsfn_released = false;       // JavaScript thread only
    std::atomic<bool> closing{false}; // destroy requested: trampolines stop posting
    std::atomic<int> holders{0};      // see CoreAcquire/CoreRelease in vm_wrap.cc
    std::mutex ops;                   // serializes stop/pause/destroy on the thread pool
    std::vector<std::unique_ptr<IoSlot>> slots;
    std::unique_ptr<VmExtension> extension; // see VmExtension
};

// For extensions: keep a VmCore alive (e.g. across a worker), and post a function to the JavaScript thread
// through the VM's queue, in order with its exit/state/io messages (any thread; false if the queue is closed).
void CoreAcquire(VmCore *core);
void CoreRelease(VmCore *core);
bool PostCustom(VmCore *core, std::function<void(Napi::Env)> fn);

class VmWrap : public Napi::ObjectWrap<VmWrap> {
  public:
    static Napi::Function DefineClass(Napi::Env env);
    explicit VmWrap(const Napi::CallbackInfo &info);
    ~VmWrap() override;
    // The shared core (nullptr only while the object is being torn down), for extensions.
    VmCore *core() const { return core_; }

  private:
    friend class VmOpWorker;
    bool CheckUsable(Napi::Env env, const char *op);
    uint32_t VcpuArg(const Napi::CallbackInfo &info, size_t index, const char *op, bool *ok);

    Napi::Value State(const Napi::CallbackInfo &info);
    Napi::Value VcpuCount(const Napi::CallbackInfo &info);
    Napi::Value HasIrqchip(const Napi::CallbackInfo &info);
    Napi::Value MemSize(const Napi::CallbackInfo &info);
    Napi::Value MemRegions(const Napi::CallbackInfo &info);
    Napi::Value MemRead(const Napi::CallbackInfo &info);
    Napi::Value MemWrite(const Napi::CallbackInfo &info);
    Napi::Value MemIsRam(const Napi::CallbackInfo &info);
    Napi::Value GetRegs(const Napi::CallbackInfo &info);
    Napi::Value SetRegs(const Napi::CallbackInfo &info);
    Napi::Value GetSregs(const Napi::CallbackInfo &info);
    Napi::Value SetSregs(const Napi::CallbackInfo &info);
    Napi::Value RegisterPio(const Napi::CallbackInfo &info);
    Napi::Value RegisterMmio(const Napi::CallbackInfo &info);
    Napi::Value CompleteIo(const Napi::CallbackInfo &info);
    Napi::Value Start(const Napi::CallbackInfo &info);
    Napi::Value Resume(const Napi::CallbackInfo &info);
    Napi::Value Stop(const Napi::CallbackInfo &info);
    Napi::Value Pause(const Napi::CallbackInfo &info);
    Napi::Value Destroy(const Napi::CallbackInfo &info);
    Napi::Value Stats(const Napi::CallbackInfo &info);
    Napi::Value SetIrqLine(const Napi::CallbackInfo &info);
    Napi::Value AddIrqfd(const Napi::CallbackInfo &info);
    Napi::Value AddIoeventfd(const Napi::CallbackInfo &info);
    Napi::Value VmFd(const Napi::CallbackInfo &info);
    Napi::Value VcpuFd(const Napi::CallbackInfo &info);

    VmCore *core_ = nullptr; // nullptr once destroy() was called
};

}  // namespace bulkhead
