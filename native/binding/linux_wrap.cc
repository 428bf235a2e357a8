#include "linux_wrap.h"

#include <mutex>
#include <string.h>
#include <string>
#include <vector>

#include "addon.h"
#include "convert.h"
#include "vm_wrap.h"

namespace bulkhead {

// Serial output waiting for the JavaScript thread, at most this much; beyond it bytes are counted as dropped
// (they stay in the core's ring of recent output). Keeps a guest that prints faster than JS reads bounded.
static const size_t kMaxPendingOutput = 1 << 20;

// One UART. Output bytes arrive one by one on vCPU threads; they are batched into `pending` and at most one
// message per batch is queued, so a chatty guest costs one JavaScript call per batch, not per byte.
struct SerialDev {
    VmCore *core = nullptr;
    bh_serial *dev = nullptr;        // owned by the VM; nullptr once it was destroyed
    std::string last_output;         // the ring's contents, kept when the VM was destroyed
    Napi::FunctionReference on_output; // empty: nobody listens (the ring still keeps the output)
    std::mutex lock;
    std::string pending;
    size_t dropped = 0;
    bool posted = false;
};

// Every device of one VM. The core frees the devices with the VM; what JavaScript may still read afterwards (recent
// output, counters) is copied here first (see VmExtension).
static const size_t kKeptOutput = 1 << 20;

struct LinuxDevices : VmExtension {
    std::vector<std::unique_ptr<SerialDev>> serials;
    std::vector<bh_i8042 *> kbcs;
    std::vector<unsigned> kbc_resets;          // valid once the VM is gone
    std::vector<bh_debug_exit *> debug_exits;
    std::vector<int> debug_exit_values;        // valid once the VM is gone
    bool vm_gone = false;

    void BeforeVmDestroy() override {
        for (auto &s : serials) {
            std::vector<uint8_t> buf(kKeptOutput);
            size_t n = bh_serial_recent_output(s->dev, buf.data(), buf.size());
            s->last_output.assign(reinterpret_cast<const char *>(buf.data()), n);
            s->dev = nullptr;
        }
        for (bh_i8042 *k : kbcs) kbc_resets.push_back(bh_i8042_resets(k));
        for (bh_debug_exit *d : debug_exits) debug_exit_values.push_back(bh_debug_exit_value(d));
        vm_gone = true;
    }
};

// The only extension the binding has, so the cast is safe (the addon is built without RTTI).
static LinuxDevices *Devices(VmCore *core) {
    if (!core->extension) core->extension.reset(new LinuxDevices());
    return static_cast<LinuxDevices *>(core->extension.get());
}

// ------------------------------------------------------------------------------------------------
// Arguments

// The VmCore of a Vm object. With `need_vm`, the VM must not be destroyed (or being destroyed); without,
// the devices may still be read (recent output, counters) after destroy.
static VmCore *CoreArg(const Napi::CallbackInfo &info, size_t index, const char *op, bool need_vm) {
    Napi::Env env = info.Env();
    AddonData *data = env.GetInstanceData<AddonData>();
    if (info.Length() <= index || !info[index].IsObject() ||
        !info[index].As<Napi::Object>().InstanceOf(data->vm_ctor.Value())) {
        ThrowTypeError(env, (std::string(op) + ": expected a Vm as the first argument").c_str());
        return nullptr;
    }
    VmCore *core = Napi::ObjectWrap<VmWrap>::Unwrap(info[index].As<Napi::Object>())->core();
    if (!core || (need_vm && (core->closing.load() || !core->vm))) {
        bh_error err{BH_E_STATE, 0, "the VM has been destroyed"};
        ThrowCoreError(env, op, err);
        return nullptr;
    }
    return core;
}

static bool BytesArg(const Napi::CallbackInfo &info, size_t index, const uint8_t **data, size_t *len) {
    if (info.Length() <= index || !info[index].IsTypedArray()) return false;
    Napi::TypedArray arr = info[index].As<Napi::TypedArray>();
    if (arr.TypedArrayType() != napi_uint8_array) return false;
    Napi::Uint8Array bytes = arr.As<Napi::Uint8Array>();
    *data = bytes.Data();
    *len = bytes.ByteLength();
    return true;
}

// ------------------------------------------------------------------------------------------------
// Boot

static Napi::Object BootInfoToJs(Napi::Env env, const bh_boot_info &b) {
    Napi::Object o = Napi::Object::New(env);
    auto big = [&](uint64_t v) { return Napi::BigInt::New(env, v); };
    o.Set("format", Napi::Number::New(env, b.format));
    o.Set("entry", Napi::Number::New(env, b.entry));
    o.Set("bootProtocol", Napi::Number::New(env, b.boot_protocol));
    o.Set("entryPoint", big(b.entry_point));
    o.Set("kernelStart", big(b.kernel_start));
    o.Set("kernelEnd", big(b.kernel_end));
    o.Set("initrdAddr", big(b.initrd_addr));
    o.Set("initrdSize", big(b.initrd_size));
    o.Set("cmdlineAddr", big(b.cmdline_addr));
    o.Set("cmdlineMax", Napi::Number::New(env, b.cmdline_max));
    o.Set("bootParamsAddr", big(b.boot_params_addr));
    o.Set("mptableAddr", big(b.mptable_addr));
    o.Set("e820Entries", Napi::Number::New(env, b.e820_entries));
    o.Set("msrsRefused", Napi::Number::New(env, b.msrs_refused));
    o.Set("notes", Napi::String::New(env, std::string(b.notes, strnlen(b.notes, sizeof b.notes))));
    return o;
}

static bool EntryArg(const Napi::Value &v, bh_linux_entry *out) {
    uint32_t e;
    if (!ToU32(v, &e) || e > BH_LINUX_ENTRY_PVH) return false;
    *out = static_cast<bh_linux_entry>(e);
    return true;
}

// boot(vm, kernel: Uint8Array, initrd: Uint8Array | null, cmdline: string | null, entry) -> boot info.
// Synchronous: the core copies the image into guest RAM (milliseconds) and sets up the vCPUs of a created VM.
static Napi::Value Boot(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    VmCore *core = CoreArg(info, 0, "load a Linux kernel", true);
    if (!core) return env.Undefined();
    bh_linux_boot_config cfg{};
    if (!BytesArg(info, 1, &cfg.kernel, &cfg.kernel_len))
        return ThrowTypeError(env, "linux.boot: kernel must be a Uint8Array");
    if (info.Length() > 2 && !info[2].IsNull() && !info[2].IsUndefined() &&
        !BytesArg(info, 2, &cfg.initrd, &cfg.initrd_len))
        return ThrowTypeError(env, "linux.boot: initrd must be a Uint8Array or null");
    std::string cmdline;
    bool has_cmdline = info.Length() > 3 && info[3].IsString();
    if (has_cmdline) cmdline = info[3].As<Napi::String>().Utf8Value();
    cfg.cmdline = has_cmdline ? cmdline.c_str() : nullptr;
    if (info.Length() < 5 || !EntryArg(info[4], &cfg.entry))
        return ThrowTypeError(env, "linux.boot: entry must be 0 (auto), 1 (64-bit) or 2 (PVH)");
    bh_boot_info out{};
    bh_error err{};
    if (bh_boot_linux(core->vm, &cfg, &out, &err) < 0) return ThrowCoreError(env, "load a Linux kernel", err);
    return BootInfoToJs(env, out);
}

// kernelImageCheck(kernel: Uint8Array, memoryBytes, entry) -> boot info (the fields the check fills).
static Napi::Value KernelImageCheck(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    const uint8_t *kernel;
    size_t len;
    uint64_t memory;
    bh_linux_entry entry;
    if (!BytesArg(info, 0, &kernel, &len) || info.Length() < 3 || !ToU64(info[1], &memory) || !EntryArg(info[2], &entry))
        return ThrowTypeError(env, "linux.kernelImageCheck: expected (kernel: Uint8Array, memoryBytes, entry)");
    bh_boot_info out{};
    bh_error err{};
    if (bh_kernel_image_check(kernel, len, memory, entry, &out, &err) < 0)
        return ThrowCoreError(env, "check the kernel image", err);
    return BootInfoToJs(env, out);
}

// guestHalted(vm) -> Promise<boolean>. On the thread pool (it pauses the VM to look), serialized with the
// VM's stop/pause/destroy. A halted guest (Linux's power-off without ACPI) is stopped here, with every vCPU
// reporting BH_EXIT_GUEST_REQUEST "power-off ...", so the VM's exits say how it ended.
class HaltCheckWorker : public Napi::AsyncWorker {
  public:
    HaltCheckWorker(Napi::Env env, VmCore *core)
        : Napi::AsyncWorker(env, "bulkhead:halt-check"), core_(core), deferred_(env) {
        CoreAcquire(core_);
    }
    ~HaltCheckWorker() override { CoreRelease(core_); }
    Napi::Promise Promise() { return deferred_.Promise(); }

    void Execute() override {
        std::lock_guard<std::mutex> lock(core_->ops);
        bh_vm *vm = core_->vm;
        // Not running (paused by the user, stopped, destroyed): nothing to detect now.
        if (core_->closing.load() || !vm || bh_vm_get_state(vm) != BH_VM_RUNNING) return;
        bool halted = false;
        rc_ = bh_linux_guest_halted(vm, &halted, &err_);
        if (rc_ == BH_E_STATE) rc_ = 0; // it stopped on its own while we looked
        if (rc_ < 0 || !halted) return;
        halted_ = true;
        bh_vm_request_stop(vm, BH_EXIT_GUEST_REQUEST, BH_GUEST_REQUEST_POWER_OFF,
                           "power-off: every vCPU halted with interrupts off");
        rc_ = bh_vm_stop(vm, &err_);
    }

    void OnOK() override {
        Napi::Env env = Env();
        if (rc_ < 0)
            deferred_.Reject(QuietCoreError(env, "check for a halted guest", err_));
        else
            deferred_.Resolve(QuietBoolean(env, halted_));
    }

  private:
    VmCore *core_;
    QuietDeferred deferred_;
    int rc_ = 0;
    bool halted_ = false;
    bh_error err_{};
};

static Napi::Value GuestHalted(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    VmCore *core = CoreArg(info, 0, "check for a halted guest", true);
    if (!core) return env.Undefined();
    HaltCheckWorker *worker = new HaltCheckWorker(env, core);
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
}

// ------------------------------------------------------------------------------------------------
// Serial

// JavaScript thread: hand the batch to the listener as (bytes: Buffer, dropped: number).
static void DeliverSerial(Napi::Env env, SerialDev *s) {
    std::string batch;
    size_t dropped;
    {
        std::lock_guard<std::mutex> lock(s->lock);
        batch.swap(s->pending);
        dropped = s->dropped;
        s->dropped = 0;
        s->posted = false;
    }
    if (s->on_output.IsEmpty() || (batch.empty() && !dropped)) return;
    Napi::HandleScope scope(env);
    s->on_output.Call({Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t *>(batch.data()), batch.size()),
                       Napi::Number::New(env, static_cast<double>(dropped))});
}

// vCPU thread: queue the byte(s), and post a delivery unless one is already queued.
static void SerialOutput(void *opaque, const uint8_t *data, size_t len) {
    SerialDev *s = static_cast<SerialDev *>(opaque);
    if (s->core->closing.load()) return;
    bool post;
    {
        std::lock_guard<std::mutex> lock(s->lock);
        if (s->pending.size() + len <= kMaxPendingOutput)
            s->pending.append(reinterpret_cast<const char *>(data), len);
        else
            s->dropped += len;
        post = !s->posted;
        s->posted = true;
    }
    if (post && !PostCustom(s->core, [s](Napi::Env env) { DeliverSerial(env, s); })) {
        std::lock_guard<std::mutex> lock(s->lock);
        s->posted = false;
    }
}

static SerialDev *SerialArg(const Napi::CallbackInfo &info, VmCore *core, const char *op) {
    uint32_t id;
    LinuxDevices *devs = Devices(core);
    if (info.Length() < 2 || !ToU32(info[1], &id) || id >= devs->serials.size()) {
        ThrowTypeError(info.Env(), (std::string(op) + ": no such serial port").c_str());
        return nullptr;
    }
    return devs->serials[id].get();
}

// serialCreate(vm, port, irq, ringBytes, onOutput?: (bytes: Buffer, dropped: number) => void) -> id
static Napi::Value SerialCreate(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    VmCore *core = CoreArg(info, 0, "add a serial port", true);
    if (!core) return env.Undefined();
    uint32_t port, irq;
    uint64_t ring;
    if (info.Length() < 4 || !ToU32(info[1], &port) || port > 0xfff8 || !ToU32(info[2], &irq) || !ToU64(info[3], &ring))
        return ThrowTypeError(env, "linux.serialCreate: expected (vm, port, irq, ringBytes, onOutput?)");
    bool listen = info.Length() > 4 && info[4].IsFunction();
    std::unique_ptr<SerialDev> s(new SerialDev());
    s->core = core;
    if (listen) s->on_output = Napi::Persistent(info[4].As<Napi::Function>());
    bh_serial_config cfg{};
    cfg.port = static_cast<uint16_t>(port);
    cfg.irq = irq;
    cfg.ring_bytes = static_cast<size_t>(ring);
    cfg.output = listen ? SerialOutput : nullptr;
    cfg.opaque = s.get();
    bh_error err{};
    if (bh_serial_create(core->vm, &cfg, &s->dev, &err) < 0) return ThrowCoreError(env, "add a serial port", err);
    LinuxDevices *devs = Devices(core);
    devs->serials.push_back(std::move(s));
    return Napi::Number::New(env, static_cast<double>(devs->serials.size() - 1));
}

// serialInput(vm, id, bytes: Uint8Array) -> how many were queued (the receive queue is bounded)
static Napi::Value SerialInput(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    VmCore *core = CoreArg(info, 0, "write to the serial port", true);
    if (!core) return env.Undefined();
    SerialDev *s = SerialArg(info, core, "linux.serialInput");
    if (!s) return env.Undefined();
    const uint8_t *data;
    size_t len;
    if (!BytesArg(info, 2, &data, &len)) return ThrowTypeError(env, "linux.serialInput: bytes must be a Uint8Array");
    return Napi::Number::New(env, static_cast<double>(bh_serial_input(s->dev, data, len)));
}

// serialRecentOutput(vm, id, max) -> Buffer. Also after the VM was destroyed (the device lives with the Vm object).
static Napi::Value SerialRecentOutput(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    VmCore *core = CoreArg(info, 0, "read recent serial output", false);
    if (!core) return env.Undefined();
    SerialDev *s = SerialArg(info, core, "linux.serialRecentOutput");
    if (!s) return env.Undefined();
    uint32_t max;
    if (info.Length() < 3 || !ToU32(info[2], &max)) return ThrowTypeError(env, "linux.serialRecentOutput: max must be a uint32");
    if (!s->dev) { // the VM is gone: the copy taken before it was destroyed
        size_t n = s->last_output.size() < max ? s->last_output.size() : max;
        return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t *>(s->last_output.data()) +
                                                   (s->last_output.size() - n), n);
    }
    std::vector<uint8_t> buf(max);
    size_t n = bh_serial_recent_output(s->dev, buf.data(), max);
    return Napi::Buffer<uint8_t>::Copy(env, buf.data(), n);
}

// ------------------------------------------------------------------------------------------------
// i8042 and debug-exit

static Napi::Value I8042Create(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    VmCore *core = CoreArg(info, 0, "add an i8042", true);
    if (!core) return env.Undefined();
    bh_i8042 *k = nullptr;
    bh_error err{};
    if (bh_i8042_create(core->vm, &k, &err) < 0) return ThrowCoreError(env, "add an i8042", err);
    LinuxDevices *devs = Devices(core);
    devs->kbcs.push_back(k);
    return Napi::Number::New(env, static_cast<double>(devs->kbcs.size() - 1));
}

static Napi::Value I8042Resets(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    VmCore *core = CoreArg(info, 0, "read the i8042", false);
    if (!core) return env.Undefined();
    uint32_t id;
    LinuxDevices *devs = Devices(core);
    if (info.Length() < 2 || !ToU32(info[1], &id) || id >= devs->kbcs.size())
        return ThrowTypeError(env, "linux.i8042Resets: no such i8042");
    if (devs->vm_gone) return Napi::Number::New(env, devs->kbc_resets[id]);
    return Napi::Number::New(env, bh_i8042_resets(devs->kbcs[id]));
}

static Napi::Value DebugExitCreate(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    VmCore *core = CoreArg(info, 0, "add a debug-exit port", true);
    if (!core) return env.Undefined();
    uint32_t port;
    if (info.Length() < 2 || !ToU32(info[1], &port) || port > 0xffff)
        return ThrowTypeError(env, "linux.debugExitCreate: expected (vm, port 0..0xffff)");
    bh_debug_exit *d = nullptr;
    bh_error err{};
    if (bh_debug_exit_create(core->vm, static_cast<uint16_t>(port), &d, &err) < 0)
        return ThrowCoreError(env, "add a debug-exit port", err);
    LinuxDevices *devs = Devices(core);
    devs->debug_exits.push_back(d);
    return Napi::Number::New(env, static_cast<double>(devs->debug_exits.size() - 1));
}

static Napi::Value DebugExitValue(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    VmCore *core = CoreArg(info, 0, "read the debug-exit port", false);
    if (!core) return env.Undefined();
    uint32_t id;
    LinuxDevices *devs = Devices(core);
    if (info.Length() < 2 || !ToU32(info[1], &id) || id >= devs->debug_exits.size())
        return ThrowTypeError(env, "linux.debugExitValue: no such debug-exit port");
    if (devs->vm_gone) return Napi::Number::New(env, devs->debug_exit_values[id]);
    return Napi::Number::New(env, bh_debug_exit_value(devs->debug_exits[id]));
}

// ------------------------------------------------------------------------------------------------

void InitLinux(Napi::Env env, Napi::Object exports) {
    Napi::Object linux = Napi::Object::New(env);
    linux.Set("boot", Napi::Function::New(env, Boot, "boot"));
    linux.Set("kernelImageCheck", Napi::Function::New(env, KernelImageCheck, "kernelImageCheck"));
    linux.Set("guestHalted", Napi::Function::New(env, GuestHalted, "guestHalted"));
    linux.Set("serialCreate", Napi::Function::New(env, SerialCreate, "serialCreate"));
    linux.Set("serialInput", Napi::Function::New(env, SerialInput, "serialInput"));
    linux.Set("serialRecentOutput", Napi::Function::New(env, SerialRecentOutput, "serialRecentOutput"));
    linux.Set("i8042Create", Napi::Function::New(env, I8042Create, "i8042Create"));
    linux.Set("i8042Resets", Napi::Function::New(env, I8042Resets, "i8042Resets"));
    linux.Set("debugExitCreate", Napi::Function::New(env, DebugExitCreate, "debugExitCreate"));
    linux.Set("debugExitValue", Napi::Function::New(env, DebugExitValue, "debugExitValue"));
    Napi::Object c = Napi::Object::New(env);
#define C(name) c.Set(#name, Napi::Number::New(env, static_cast<double>(name)));
    C(BH_LINUX_ENTRY_AUTO) C(BH_LINUX_ENTRY_64BIT) C(BH_LINUX_ENTRY_PVH) C(BH_KERNEL_ELF) C(BH_KERNEL_BZIMAGE)
#undef C
    linux.Set("constants", c);
    exports.Set("linux", linux);
}

}  // namespace bulkhead
