#include "vm_wrap.h"

#include <string.h>

#include "addon.h"
#include "convert.h"

namespace bulkhead {

// ------------------------------------------------------------------------------------------------
// Lifetime of VmCore: one reference for the JavaScript object, one for the ThreadSafeFunction, one per
// in-flight worker. The last one to let go destroys the VM if nobody did (environment teardown).

void CoreAcquire(VmCore *core) { core->holders.fetch_add(1); }

// Stops the VM (so no device is in use), lets the extension copy what JavaScript may read later, then destroys
// the VM and the devices it owns.
static void DestroyVmAndDevices(VmCore *core) {
    if (!core->vm) return;
    bh_vm_stop(core->vm, nullptr);
    if (core->extension) core->extension->BeforeVmDestroy();
    bh_vm_destroy(core->vm);
    core->vm = nullptr;
}

void CoreRelease(VmCore *core) {
    if (core->holders.fetch_sub(1) != 1) return;
    DestroyVmAndDevices(core);
    if (core->kvm) KvmRefRelease(core->kvm);
    delete core; // and its extension's devices, now that the VM is gone
}

// Destroys the VM now (bounded: the core stops and joins its threads). Caller holds no lock.
static void CoreDestroyVm(VmCore *core) {
    core->closing.store(true);
    std::lock_guard<std::mutex> lock(core->ops);
    DestroyVmAndDevices(core);
}

// JavaScript thread only.
static void CoreReleaseTsfn(VmCore *core) {
    if (core->tsfn_released) return;
    core->tsfn_released = true;
    core->tsfn.Release();
}

// The ThreadSafeFunction is gone: after destroy released it, or at environment teardown, in which case
// the VM is destroyed here so no vCPU thread posts into a freed queue.
void FinalizeCore(Napi::Env, void *, VmCore *core) {
    core->tsfn_released = true;
    if (core->vm) CoreDestroyVm(core);
    CoreRelease(core);
}

// ------------------------------------------------------------------------------------------------
// Core callbacks: vCPU threads (or whichever thread changed the state). They copy and post, nothing else.

static void Post(VmCore *core, Message *message) {
    if (core->tsfn.NonBlockingCall(message) != napi_ok) delete message;
}

bool PostCustom(VmCore *core, std::function<void(Napi::Env)> fn) {
    Message *message = new Message{};
    message->kind = MessageKind::Custom;
    message->custom = std::move(fn);
    if (core->tsfn.NonBlockingCall(message) == napi_ok) return true;
    delete message;
    return false;
}

static void OnExit(void *opaque, const bh_vcpu_exit *exit) {
    VmCore *core = static_cast<VmCore *>(opaque);
    Message *message = new Message{};
    message->kind = MessageKind::Exit;
    message->exit = *exit;
    Post(core, message);
}

static void OnState(void *opaque, bh_vm_state state) {
    VmCore *core = static_cast<VmCore *>(opaque);
    Message *message = new Message{};
    message->kind = MessageKind::State;
    message->state = state;
    Post(core, message);
}

// Every JavaScript port/MMIO handler goes through here: the access is posted to JavaScript and the vCPU
// waits (BH_IO_PENDING) until CompleteIo, or until stop wakes it.
static bh_io_result IoTrampoline(void *opaque, bh_io_access *access) {
    IoSlot *slot = static_cast<IoSlot *>(opaque);
    VmCore *core = slot->core;
    if (access->vcpu >= core->vcpus || access->size == 0 || access->size > 8) return BH_IO_ERROR;
    // Being destroyed: post nothing; the pending vCPU is woken by the stop that destroy performs.
    if (core->closing.load()) return BH_IO_PENDING;
    Message *message = new Message{};
    message->kind = MessageKind::Io;
    message->handler_id = slot->handler_id;
    message->access = *access;
    message->seq = access->token; // the core refuses a completion that does not name the pending access
    if (core->tsfn.NonBlockingCall(message) != napi_ok) {
        delete message;
        return BH_IO_ERROR;
    }
    return BH_IO_PENDING;
}

// ------------------------------------------------------------------------------------------------
// Messages arrive here on the JavaScript thread, in the order they were posted.

static Napi::BigInt LittleEndianBigInt(Napi::Env env, const uint8_t *bytes, uint8_t size) {
    uint64_t value = 0;
    for (int i = size - 1; i >= 0; i--) value = (value << 8) | bytes[i];
    return Napi::BigInt::New(env, value);
}

void CallJs(Napi::Env env, Napi::Function callback, VmCore *core, Message *message) {
    std::unique_ptr<Message> owned(message);
    if (env == nullptr || callback == nullptr || !CanCallJs(env)) return;
    switch (message->kind) {
    case MessageKind::Exit: {
        const bh_vcpu_exit &e = message->exit;
        Napi::Object obj = Napi::Object::New(env);
        obj.Set("vcpu", Napi::Number::New(env, e.vcpu));
        obj.Set("reason", Napi::Number::New(env, e.reason));
        obj.Set("kvmExitReason", Napi::Number::New(env, e.kvm_exit_reason));
        Napi::Array detail = Napi::Array::New(env, 4);
        for (uint32_t i = 0; i < 4; i++) detail.Set(i, Napi::BigInt::New(env, static_cast<uint64_t>(e.detail[i])));
        obj.Set("detail", detail);
        obj.Set("errno", Napi::Number::New(env, e.error_errno));
        obj.Set("rip", Napi::BigInt::New(env, static_cast<uint64_t>(e.rip)));
        obj.Set("message", Napi::String::New(env, strnlen(e.message, sizeof e.message) == sizeof e.message
                                                          ? std::string(e.message, sizeof e.message)
                                                          : std::string(e.message)));
        callback.Call({Napi::String::New(env, "exit"), obj});
        break;
    }
    case MessageKind::State: {
        // Keep the event loop alive exactly while the VM runs. Decided from the VM's current state, not the
        // message's, so a reordering between threads cannot leave the loop referenced after a stop.
        bool running = false;
        int current = message->state;
        if (!core->closing.load() && core->vm) {
            current = bh_vm_get_state(core->vm);
            running = current == BH_VM_RUNNING;
        }
        if (!core->tsfn_released) {
            if (running)
                core->tsfn.Ref(env);
            else
                core->tsfn.Unref(env);
        }
        Napi::Object obj = Napi::Object::New(env);
        obj.Set("state", Napi::Number::New(env, message->state));
        obj.Set("current", Napi::Number::New(env, current));
        callback.Call({Napi::String::New(env, "state"), obj});
        break;
    }
    case MessageKind::Io: {
        const bh_io_access &a = message->access;
        Napi::Object obj = Napi::Object::New(env);
        obj.Set("handler", Napi::Number::New(env, message->handler_id));
        obj.Set("vcpu", Napi::Number::New(env, a.vcpu));
        obj.Set("seq", Napi::Number::New(env, static_cast<double>(message->seq)));
        obj.Set("isMmio", Napi::Boolean::New(env, a.is_mmio));
        obj.Set("isWrite", Napi::Boolean::New(env, a.is_write));
        obj.Set("size", Napi::Number::New(env, a.size));
        obj.Set("addr", Napi::BigInt::New(env, static_cast<uint64_t>(a.addr)));
        obj.Set("offset", Napi::BigInt::New(env, static_cast<uint64_t>(a.offset)));
        obj.Set("data", a.is_write ? LittleEndianBigInt(env, a.data, a.size) : Napi::BigInt::New(env, static_cast<uint64_t>(0)));
        callback.Call({Napi::String::New(env, "io"), obj});
        break;
    }
    case MessageKind::Custom:
        if (message->custom) message->custom(env);
        break;
    }
}

// ------------------------------------------------------------------------------------------------
// Lifecycle operations that block: run on the thread pool, resolve a promise.

enum class VmOp { Stop, Pause, Destroy };

class VmOpWorker : public Napi::AsyncWorker {
  public:
    VmOpWorker(Napi::Env env, VmCore *core, VmOp op)
        : Napi::AsyncWorker(env, "bulkhead:vm"), core_(core), op_(op), deferred_(env) {
        CoreAcquire(core_);
    }
    ~VmOpWorker() override { CoreRelease(core_); }

    Napi::Promise Promise() { return deferred_.Promise(); }

    void Execute() override {
        if (op_ == VmOp::Destroy) {
            CoreDestroyVm(core_);
            return;
        }
        std::lock_guard<std::mutex> lock(core_->ops);
        if (!core_->vm) {
            err_ = bh_error{BH_E_STATE, 0, "the VM has been destroyed"};
            rc_ = BH_E_STATE;
            return;
        }
        rc_ = op_ == VmOp::Stop ? bh_vm_stop(core_->vm, &err_) : bh_vm_pause(core_->vm, &err_);
    }

    void OnOK() override {
        Napi::Env env = Env();
        if (op_ == VmOp::Destroy) CoreReleaseTsfn(core_);
        if (rc_ < 0)
            deferred_.Reject(QuietCoreError(env, op_ == VmOp::Stop ? "stop" : "pause", err_));
        else
            deferred_.Resolve(QuietUndefined(env));
    }

  private:
    VmCore *core_;
    VmOp op_;
    QuietDeferred deferred_;
    int rc_ = 0;
    bh_error err_{};
};

// ------------------------------------------------------------------------------------------------

Napi::Function VmWrap::DefineClass(Napi::Env env) {
    return ObjectWrap<VmWrap>::DefineClass(
        env, "Vm",
        {
            InstanceMethod("state", &VmWrap::State),
            InstanceMethod("vcpuCount", &VmWrap::VcpuCount),
            InstanceMethod("hasIrqchip", &VmWrap::HasIrqchip),
            InstanceMethod("memSize", &VmWrap::MemSize),
            InstanceMethod("memRegions", &VmWrap::MemRegions),
            InstanceMethod("memRead", &VmWrap::MemRead),
            InstanceMethod("memWrite", &VmWrap::MemWrite),
            InstanceMethod("memIsRam", &VmWrap::MemIsRam),
            InstanceMethod("getRegs", &VmWrap::GetRegs),
            InstanceMethod("setRegs", &VmWrap::SetRegs),
            InstanceMethod("getSregs", &VmWrap::GetSregs),
            InstanceMethod("setSregs", &VmWrap::SetSregs),
            InstanceMethod("registerPio", &VmWrap::RegisterPio),
            InstanceMethod("registerMmio", &VmWrap::RegisterMmio),
            InstanceMethod("completeIo", &VmWrap::CompleteIo),
            InstanceMethod("start", &VmWrap::Start),
            InstanceMethod("resume", &VmWrap::Resume),
            InstanceMethod("stop", &VmWrap::Stop),
            InstanceMethod("pause", &VmWrap::Pause),
            InstanceMethod("destroy", &VmWrap::Destroy),
            InstanceMethod("stats", &VmWrap::Stats),
            InstanceMethod("setIrqLine", &VmWrap::SetIrqLine),
            InstanceMethod("addIrqfd", &VmWrap::AddIrqfd),
            InstanceMethod("addIoeventfd", &VmWrap::AddIoeventfd),
            InstanceMethod("vmFd", &VmWrap::VmFd),
            InstanceMethod("vcpuFd", &VmWrap::VcpuFd),
        });
}

// new Vm(kvm: Kvm, config: { memoryBytes, vcpus, irqchip }, onMessage: (kind, payload) => void)
VmWrap::VmWrap(const Napi::CallbackInfo &info) : ObjectWrap<VmWrap>(info) {
    Napi::Env env = info.Env();
    KvmRef *kvm = KvmArgument(info, "Vm: expected (kvm: Kvm, config: object, onMessage: function)", "create VM");
    if (!kvm) return;
    Napi::Object config = info[1].As<Napi::Object>();
    bh_vm_config cfg{};
    if (!GetU64(config, "memoryBytes", &cfg.memory_bytes)) {
        ThrowTypeError(env, "Vm: config.memoryBytes must be a non-negative integer");
        return;
    }
    if (!GetU32(config, "vcpus", &cfg.vcpus) || cfg.vcpus == 0 || cfg.vcpus > BH_MAX_VCPUS_HARD_LIMIT) {
        ThrowTypeError(env, "Vm: config.vcpus must be an integer in 1..256");
        return;
    }
    cfg.irqchip = config.Has("irqchip") && config.Get("irqchip").ToBoolean().Value();

    VmCore *core = new VmCore();
    core->vcpus = cfg.vcpus;
    core->kvm = kvm;
    KvmRefAcquire(core->kvm);
    core->holders.store(2); // this object + the ThreadSafeFunction
    core->tsfn = MessageTsfn::New(env, info[2].As<Napi::Function>(), "bulkhead:vm-events", 0, 1, core, FinalizeCore,
                                  static_cast<void *>(nullptr));
    core->tsfn.Unref(env); // the VM is not running: do not keep the process alive
    core_ = core;

    cfg.on_exit = OnExit;
    cfg.on_state = OnState;
    cfg.opaque = core;
    bh_error err{};
    bh_vm *vm = nullptr;
    if (bh_vm_create(core->kvm->kvm, &cfg, &vm, &err) < 0) {
        core->closing.store(true);
        CoreReleaseTsfn(core);
        ThrowCoreError(env, "create VM", err);
        return;
    }
    core->vm = vm;
}

VmWrap::~VmWrap() {
    if (!core_) return;
    if (!core_->closing.load()) {
        CoreDestroyVm(core_);
        CoreReleaseTsfn(core_);
    }
    CoreRelease(core_);
    core_ = nullptr;
}

bool VmWrap::CheckUsable(Napi::Env env, const char *op) {
    if (core_ && !core_->closing.load() && core_->vm) return true;
    bh_error err{BH_E_STATE, 0, "the VM has been destroyed"};
    ThrowCoreError(env, op, err);
    return false;
}

uint32_t VmWrap::VcpuArg(const Napi::CallbackInfo &info, size_t index, const char *op, bool *ok) {
    uint32_t vcpu = 0;
    *ok = info.Length() > index && ToU32(info[index], &vcpu) && vcpu < core_->vcpus;
    if (!*ok) {
        std::string message = std::string(op) + ": vcpu index must be an integer in 0.." + std::to_string(core_->vcpus - 1);
        ThrowTypeError(info.Env(), message.c_str());
    }
    return vcpu;
}

#define REQUIRE_USABLE(op)                                   \
    Napi::Env env = info.Env();                              \
    if (!CheckUsable(env, op)) return env.Undefined();

Napi::Value VmWrap::State(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("state");
    return Napi::Number::New(env, bh_vm_get_state(core_->vm));
}

Napi::Value VmWrap::VcpuCount(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("vcpuCount");
    return Napi::Number::New(env, bh_vm_vcpu_count(core_->vm));
}

Napi::Value VmWrap::HasIrqchip(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("hasIrqchip");
    return Napi::Boolean::New(env, bh_vm_has_irqchip(core_->vm));
}

Napi::Value VmWrap::MemSize(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("memSize");
    return Napi::BigInt::New(env, static_cast<uint64_t>(bh_mem_size(core_->vm)));
}

Napi::Value VmWrap::MemRegions(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("memRegions");
    bh_mem_region regions[8];
    size_t n = bh_mem_regions(core_->vm, regions, 8);
    if (n > 8) n = 8;
    Napi::Array out = Napi::Array::New(env, n);
    for (size_t i = 0; i < n; i++) {
        Napi::Object r = Napi::Object::New(env);
        r.Set("gpa", Napi::BigInt::New(env, static_cast<uint64_t>(regions[i].gpa)));
        r.Set("size", Napi::BigInt::New(env, static_cast<uint64_t>(regions[i].size)));
        r.Set("memfd", Napi::Number::New(env, regions[i].memfd));
        r.Set("fdOffset", Napi::BigInt::New(env, static_cast<uint64_t>(regions[i].fd_offset)));
        out.Set(static_cast<uint32_t>(i), r);
    }
    return out;
}

// memRead(gpa, length) -> Buffer
Napi::Value VmWrap::MemRead(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("read guest memory");
    uint64_t gpa, len;
    if (info.Length() < 2 || !ToU64(info[0], &gpa) || !ToU64(info[1], &len) || len > (1ULL << 32))
        return ThrowTypeError(env, "memRead: expected (gpa, length <= 4 GiB)");
    Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::New(env, static_cast<size_t>(len));
    if (env.IsExceptionPending()) return env.Undefined();
    bh_error err{};
    if (bh_mem_read(core_->vm, gpa, buf.Data(), static_cast<size_t>(len), &err) < 0)
        return ThrowCoreError(env, "read guest memory", err);
    return buf;
}

// memWrite(gpa, data: Uint8Array)
Napi::Value VmWrap::MemWrite(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("write guest memory");
    uint64_t gpa;
    if (info.Length() < 2 || !ToU64(info[0], &gpa) || !info[1].IsTypedArray() ||
        info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
        return ThrowTypeError(env, "memWrite: expected (gpa, data: Uint8Array)");
    Napi::Uint8Array data = info[1].As<Napi::Uint8Array>();
    bh_error err{};
    if (bh_mem_write(core_->vm, gpa, data.Data(), data.ByteLength(), &err) < 0)
        return ThrowCoreError(env, "write guest memory", err);
    return env.Undefined();
}

Napi::Value VmWrap::MemIsRam(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("memIsRam");
    uint64_t gpa, len;
    if (info.Length() < 2 || !ToU64(info[0], &gpa) || !ToU64(info[1], &len))
        return ThrowTypeError(env, "memIsRam: expected (gpa, length)");
    return Napi::Boolean::New(env, bh_mem_is_ram(core_->vm, gpa, static_cast<size_t>(len)));
}

Napi::Value VmWrap::GetRegs(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("get registers");
    bool ok;
    uint32_t vcpu = VcpuArg(info, 0, "getRegs", &ok);
    if (!ok) return env.Undefined();
    bh_regs regs{};
    bh_error err{};
    if (bh_vcpu_get_regs(core_->vm, vcpu, &regs, &err) < 0) return ThrowCoreError(env, "get registers", err);
    return RegsToJs(env, regs);
}

Napi::Value VmWrap::SetRegs(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("set registers");
    bool ok;
    uint32_t vcpu = VcpuArg(info, 0, "setRegs", &ok);
    if (!ok) return env.Undefined();
    bh_regs regs{};
    const char *bad = "";
    if (info.Length() < 2 || !info[1].IsObject() || !RegsFromJs(info[1].As<Napi::Object>(), &regs, &bad))
        return ThrowTypeError(env, (std::string("setRegs: missing or invalid register ") + bad).c_str());
    bh_error err{};
    if (bh_vcpu_set_regs(core_->vm, vcpu, &regs, &err) < 0) return ThrowCoreError(env, "set registers", err);
    return env.Undefined();
}

Napi::Value VmWrap::GetSregs(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("get special registers");
    bool ok;
    uint32_t vcpu = VcpuArg(info, 0, "getSregs", &ok);
    if (!ok) return env.Undefined();
    bh_sregs sregs{};
    bh_error err{};
    if (bh_vcpu_get_sregs(core_->vm, vcpu, &sregs, &err) < 0) return ThrowCoreError(env, "get special registers", err);
    return SregsToJs(env, sregs);
}

Napi::Value VmWrap::SetSregs(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("set special registers");
    bool ok;
    uint32_t vcpu = VcpuArg(info, 0, "setSregs", &ok);
    if (!ok) return env.Undefined();
    bh_sregs sregs{};
    const char *bad = "";
    if (info.Length() < 2 || !info[1].IsObject() || !SregsFromJs(info[1].As<Napi::Object>(), &sregs, &bad))
        return ThrowTypeError(env, (std::string("setSregs: missing or invalid field ") + bad).c_str());
    bh_error err{};
    if (bh_vcpu_set_sregs(core_->vm, vcpu, &sregs, &err) < 0) return ThrowCoreError(env, "set special registers", err);
    return env.Undefined();
}

// registerPio(base, len, handlerId)
Napi::Value VmWrap::RegisterPio(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("register a port handler");
    uint32_t base, len, id;
    if (info.Length() < 3 || !ToU32(info[0], &base) || base > 0xffff || !ToU32(info[1], &len) || !ToU32(info[2], &id))
        return ThrowTypeError(env, "registerPio: expected (base: 0..0xffff, len, handlerId)");
    core_->slots.push_back(std::unique_ptr<IoSlot>(new IoSlot{core_, id}));
    bh_error err{};
    if (bh_vm_register_pio(core_->vm, static_cast<uint16_t>(base), len, IoTrampoline, core_->slots.back().get(), &err) < 0) {
        core_->slots.pop_back();
        return ThrowCoreError(env, "register a port handler", err);
    }
    return env.Undefined();
}

// registerMmio(base, len, handlerId)
Napi::Value VmWrap::RegisterMmio(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("register an MMIO handler");
    uint64_t base, len;
    uint32_t id;
    if (info.Length() < 3 || !ToU64(info[0], &base) || !ToU64(info[1], &len) || !ToU32(info[2], &id))
        return ThrowTypeError(env, "registerMmio: expected (base, len, handlerId)");
    core_->slots.push_back(std::unique_ptr<IoSlot>(new IoSlot{core_, id}));
    bh_error err{};
    if (bh_vm_register_mmio(core_->vm, base, len, IoTrampoline, core_->slots.back().get(), &err) < 0) {
        core_->slots.pop_back();
        return ThrowCoreError(env, "register an MMIO handler", err);
    }
    return env.Undefined();
}

// completeIo(vcpu, seq, ok, value: bigint, size) -> boolean (false: stale, late or VM gone; ignored)
Napi::Value VmWrap::CompleteIo(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!core_ || core_->closing.load() || !core_->vm) return Napi::Boolean::New(env, false);
    uint32_t vcpu, size;
    uint64_t seq, value = 0;
    if (info.Length() < 5 || !ToU32(info[0], &vcpu) || vcpu >= core_->vcpus || !ToU64(info[1], &seq) ||
        !ToU32(info[4], &size) || size == 0 || size > 8)
        return ThrowTypeError(env, "completeIo: expected (vcpu, seq, ok, value, size)");
    bool ok = info[2].ToBoolean().Value();
    if (ok && !ToU64(info[3], &value)) return ThrowTypeError(env, "completeIo: value must be a uint64");
    uint8_t bytes[8];
    for (int i = 0; i < 8; i++) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
    bh_error err{};
    int rc = bh_vcpu_complete_io(core_->vm, vcpu, seq, bytes, static_cast<uint8_t>(size), ok, &err);
    return Napi::Boolean::New(env, rc == 0);
}

Napi::Value VmWrap::Start(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("start");
    bh_error err{};
    if (bh_vm_start(core_->vm, &err) < 0) return ThrowCoreError(env, "start", err);
    if (!core_->tsfn_released) core_->tsfn.Ref(env); // running: keep the process alive until it stops
    return env.Undefined();
}

Napi::Value VmWrap::Resume(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("resume");
    bh_error err{};
    if (bh_vm_resume(core_->vm, &err) < 0) return ThrowCoreError(env, "resume", err);
    if (!core_->tsfn_released) core_->tsfn.Ref(env);
    return env.Undefined();
}

Napi::Value VmWrap::Stop(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("stop");
    VmOpWorker *worker = new VmOpWorker(env, core_, VmOp::Stop);
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
}

Napi::Value VmWrap::Pause(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("pause");
    VmOpWorker *worker = new VmOpWorker(env, core_, VmOp::Pause);
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
}

// destroy() -> Promise<void>. From here on every method throws; completions are dropped.
Napi::Value VmWrap::Destroy(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!core_ || core_->closing.load()) {
        Napi::Promise::Deferred done = Napi::Promise::Deferred::New(env);
        done.Resolve(env.Undefined());
        return done.Promise();
    }
    core_->closing.store(true);
    VmOpWorker *worker = new VmOpWorker(env, core_, VmOp::Destroy);
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
}

Napi::Value VmWrap::Stats(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("stats");
    bh_vm_stats s{};
    bh_vm_get_stats(core_->vm, &s);
    Napi::Object obj = Napi::Object::New(env);
    obj.Set("exits", Napi::Number::New(env, static_cast<double>(s.exits)));
    obj.Set("pioExits", Napi::Number::New(env, static_cast<double>(s.pio_exits)));
    obj.Set("mmioExits", Napi::Number::New(env, static_cast<double>(s.mmio_exits)));
    obj.Set("unhandledPio", Napi::Number::New(env, static_cast<double>(s.unhandled_pio)));
    obj.Set("unhandledMmio", Napi::Number::New(env, static_cast<double>(s.unhandled_mmio)));
    obj.Set("pauses", Napi::Number::New(env, static_cast<double>(s.pauses)));
    return obj;
}

// setIrqLine(gsi, level)
Napi::Value VmWrap::SetIrqLine(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("set an IRQ line");
    uint32_t gsi;
    if (info.Length() < 2 || !ToU32(info[0], &gsi)) return ThrowTypeError(env, "setIrqLine: expected (gsi, level)");
    bh_error err{};
    if (bh_vm_set_irq_line(core_->vm, gsi, info[1].ToBoolean().Value(), &err) < 0)
        return ThrowCoreError(env, "set an IRQ line", err);
    return env.Undefined();
}

// addIrqfd(gsi) -> fd
Napi::Value VmWrap::AddIrqfd(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("add an irqfd");
    uint32_t gsi;
    if (info.Length() < 1 || !ToU32(info[0], &gsi)) return ThrowTypeError(env, "addIrqfd: expected (gsi)");
    int fd = -1;
    bh_error err{};
    if (bh_vm_add_irqfd(core_->vm, gsi, &fd, &err) < 0) return ThrowCoreError(env, "add an irqfd", err);
    return Napi::Number::New(env, fd);
}

// addIoeventfd(addr, len, isMmio, datamatch?: bigint) -> fd
Napi::Value VmWrap::AddIoeventfd(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("add an ioeventfd");
    uint64_t addr, datamatch = 0;
    uint32_t len;
    bool use_datamatch = info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsNull();
    if (info.Length() < 3 || !ToU64(info[0], &addr) || !ToU32(info[1], &len) ||
        (use_datamatch && !ToU64(info[3], &datamatch)))
        return ThrowTypeError(env, "addIoeventfd: expected (addr, len, isMmio, datamatch?)");
    int fd = -1;
    bh_error err{};
    if (bh_vm_add_ioeventfd(core_->vm, addr, len, info[2].ToBoolean().Value(), use_datamatch, datamatch, &fd, &err) < 0)
        return ThrowCoreError(env, "add an ioeventfd", err);
    return Napi::Number::New(env, fd);
}

Napi::Value VmWrap::VmFd(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("vmFd");
    return Napi::Number::New(env, bh_vm_fd(core_->vm));
}

Napi::Value VmWrap::VcpuFd(const Napi::CallbackInfo &info) {
    REQUIRE_USABLE("vcpuFd");
    bool ok;
    uint32_t vcpu = VcpuArg(info, 0, "vcpuFd", &ok);
    if (!ok) return env.Undefined();
    return Napi::Number::New(env, bh_vcpu_fd(core_->vm, vcpu));
}

void InitVm(Napi::Env env, Napi::Object exports, AddonData *data) {
    Napi::Function ctor = VmWrap::DefineClass(env);
    data->vm_ctor = Napi::Persistent(ctor);
    exports.Set("Vm", ctor);
}

}  // namespace bulkhead
