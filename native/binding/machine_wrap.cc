#include "machine_wrap.h"

#include <memory>
#include <string.h>
#include <sys/stat.h>
#include <vector>

#include "addon.h"
#include "convert.h"

namespace bulkhead {

// Console bytes waiting for JavaScript, per source; beyond this they are counted as dropped (the machine's own
// tail still has the most recent ones).
static const size_t kMaxPendingConsole = 1 << 20;

static void CoreAcquire(MachineCore *core) { core->holders.fetch_add(1); }

static void DestroyMachineNow(MachineCore *core) {
    core->closing.store(true);
    std::lock_guard<std::mutex> lock(core->ops);
    if (core->machine) bh_machine_destroy(core->machine);
    core->machine = nullptr;
}

static void CoreRelease(MachineCore *core) {
    if (core->holders.fetch_sub(1) != 1) return;
    if (core->machine) bh_machine_destroy(core->machine);
    core->machine = nullptr;
    if (core->kvm) KvmRefRelease(core->kvm);
    delete core;
}

static void ReleaseTsfn(MachineCore *core) {
    if (core->tsfn_released) return;
    core->tsfn_released = true;
    core->tsfn.Release();
}

void FinalizeMachineCore(Napi::Env, void *, MachineCore *core) {
    core->tsfn_released = true;
    if (core->machine) DestroyMachineNow(core); // environment teardown: nothing may post into a freed queue
    CoreRelease(core);
}

// ------------------------------------------------------------------------------------------------
// Callbacks from the machine's threads: copy and post.

static void Post(MachineCore *core, MachineMessage *m) {
    if (core->closing.load() || core->tsfn.NonBlockingCall(m) != napi_ok) delete m;
}

static void OnConsole(void *opaque, bh_console_source source, const uint8_t *data, size_t len) {
    MachineCore *core = static_cast<MachineCore *>(opaque);
    if (core->closing.load()) return;
    int i = source == BH_CONSOLE_VIRTIO ? 1 : 0;
    bool post;
    {
        std::lock_guard<std::mutex> lock(core->out_lock);
        ConsoleBatch &b = core->out[i];
        if (b.pending.size() + len <= kMaxPendingConsole)
            b.pending.append(reinterpret_cast<const char *>(data), len);
        else
            b.dropped += len;
        post = !b.posted;
        b.posted = true;
    }
    if (!post) return;
    MachineMessage *m = new MachineMessage{};
    m->kind = MachineMessageKind::Console;
    m->source = source;
    if (core->closing.load() || core->tsfn.NonBlockingCall(m) != napi_ok) {
        delete m;
        std::lock_guard<std::mutex> lock(core->out_lock);
        core->out[i].posted = false;
    }
}

static void OnEvent(void *opaque, const bh_machine_event *e) {
    MachineCore *core = static_cast<MachineCore *>(opaque);
    MachineMessage *m = new MachineMessage{};
    m->kind = MachineMessageKind::Event;
    m->event = *e;
    Post(core, m);
}

static void OnEnd(void *opaque, const bh_machine_exit *x) {
    MachineCore *core = static_cast<MachineCore *>(opaque);
    MachineMessage *m = new MachineMessage{};
    m->kind = MachineMessageKind::End;
    m->exit = *x;
    Post(core, m);
}

// ------------------------------------------------------------------------------------------------
// On the JavaScript thread.

static Napi::String Text(Napi::Env env, const char *s, size_t max) { return Napi::String::New(env, std::string(s, strnlen(s, max))); }

static Napi::Object ExitToJs(Napi::Env env, const bh_machine_exit &x) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("end", Napi::Number::New(env, x.end));
    o.Set("nsSinceCreate", Napi::Number::New(env, static_cast<double>(x.ns_since_create)));
    o.Set("device", Text(env, x.device, sizeof x.device));
    o.Set("message", Text(env, x.message, sizeof x.message));
    Napi::Object c = Napi::Object::New(env);
    c.Set("vcpu", Napi::Number::New(env, x.cause.vcpu));
    c.Set("reason", Napi::Number::New(env, x.cause.reason));
    c.Set("kvmExitReason", Napi::Number::New(env, x.cause.kvm_exit_reason));
    Napi::Array detail = Napi::Array::New(env, 4);
    for (uint32_t i = 0; i < 4; i++) detail.Set(i, Napi::BigInt::New(env, static_cast<uint64_t>(x.cause.detail[i])));
    c.Set("detail", detail);
    c.Set("errno", Napi::Number::New(env, x.cause.error_errno));
    c.Set("rip", Napi::BigInt::New(env, static_cast<uint64_t>(x.cause.rip)));
    c.Set("message", Text(env, x.cause.message, sizeof x.cause.message));
    o.Set("cause", c);
    return o;
}

void MachineCallJs(Napi::Env env, Napi::Function callback, MachineCore *core, MachineMessage *message) {
    std::unique_ptr<MachineMessage> owned(message);
    if (env == nullptr || callback == nullptr || !CanCallJs(env)) return;
    switch (message->kind) {
    case MachineMessageKind::Console: {
        int i = message->source == BH_CONSOLE_VIRTIO ? 1 : 0;
        std::string batch;
        size_t dropped;
        {
            std::lock_guard<std::mutex> lock(core->out_lock);
            batch.swap(core->out[i].pending);
            dropped = core->out[i].dropped;
            core->out[i].dropped = 0;
            core->out[i].posted = false;
        }
        if (batch.empty() && !dropped) return;
        Napi::Object o = Napi::Object::New(env);
        o.Set("source", Napi::Number::New(env, message->source));
        o.Set("bytes", Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t *>(batch.data()), batch.size()));
        o.Set("dropped", Napi::Number::New(env, static_cast<double>(dropped)));
        callback.Call({Napi::String::New(env, "console"), o});
        break;
    }
    case MachineMessageKind::Event: {
        const bh_machine_event &e = message->event;
        Napi::Object o = Napi::Object::New(env);
        o.Set("kind", Napi::Number::New(env, e.kind));
        o.Set("marker", Napi::Number::New(env, e.marker));
        o.Set("nsSinceCreate", Napi::Number::New(env, static_cast<double>(e.ns_since_create)));
        o.Set("device", Text(env, e.device, sizeof e.device));
        o.Set("reason", Text(env, e.reason, sizeof e.reason));
        callback.Call({Napi::String::New(env, "event"), o});
        break;
    }
    case MachineMessageKind::End:
        if (core->referenced && !core->tsfn_released) { // ended: no longer keeps the process alive
            core->tsfn.Unref(env);
            core->referenced = false;
        }
        callback.Call({Napi::String::New(env, "end"), ExitToJs(env, message->exit)});
        break;
    }
}

// ------------------------------------------------------------------------------------------------
// Workers

enum class MachineOp { Stop, Destroy };

class MachineOpWorker : public Napi::AsyncWorker {
  public:
    MachineOpWorker(Napi::Env env, MachineCore *core, MachineOp op)
        : Napi::AsyncWorker(env, "bulkhead:machine"), core_(core), op_(op), deferred_(env) {
        CoreAcquire(core_);
    }
    ~MachineOpWorker() override { CoreRelease(core_); }
    Napi::Promise Promise() { return deferred_.Promise(); }

    void Execute() override {
        if (op_ == MachineOp::Destroy) {
            DestroyMachineNow(core_);
            return;
        }
        std::lock_guard<std::mutex> lock(core_->ops);
        if (core_->machine) rc_ = bh_machine_stop(core_->machine, &err_);
    }

    void OnOK() override {
        Napi::Env env = Env();
        if (op_ == MachineOp::Destroy) ReleaseTsfn(core_);
        if (rc_ < 0)
            deferred_.Reject(QuietCoreError(env, "stop the machine", err_));
        else
            deferred_.Resolve(QuietUndefined(env));
    }

  private:
    MachineCore *core_;
    MachineOp op_;
    QuietDeferred deferred_;
    int rc_ = 0;
    bh_error err_{};
};

// ------------------------------------------------------------------------------------------------

class MachineWrap : public Napi::ObjectWrap<MachineWrap> {
  public:
    static Napi::Function DefineClass(Napi::Env env) {
        return ObjectWrap<MachineWrap>::DefineClass(
            env, "Machine",
            {
                InstanceMethod("start", &MachineWrap::Start),
                InstanceMethod("stop", &MachineWrap::Stop),
                InstanceMethod("destroy", &MachineWrap::Destroy),
                InstanceMethod("consoleInput", &MachineWrap::ConsoleInput),
                InstanceMethod("consoleTail", &MachineWrap::ConsoleTail),
                InstanceMethod("stats", &MachineWrap::Stats),
                InstanceMethod("vmState", &MachineWrap::VmState),
            });
    }

    explicit MachineWrap(const Napi::CallbackInfo &info);
    ~MachineWrap() override {
        if (!core_) return;
        if (!core_->closing.load()) {
            DestroyMachineNow(core_);
            ReleaseTsfn(core_);
        }
        CoreRelease(core_);
    }

  private:
    bool Usable(Napi::Env env, const char *op) {
        if (core_ && !core_->closing.load() && core_->machine) return true;
        bh_error err{BH_E_STATE, 0, "the machine has been destroyed"};
        ThrowCoreError(env, op, err);
        return false;
    }

    Napi::Value Start(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!Usable(env, "start the machine")) return env.Undefined();
        bh_error err{};
        if (bh_machine_start(core_->machine, &err) < 0) return ThrowCoreError(env, "start the machine", err);
        if (!core_->tsfn_released && !core_->referenced) { // running: keep the process alive until the end
            core_->tsfn.Ref(env);
            core_->referenced = true;
        }
        return env.Undefined();
    }

    Napi::Value Stop(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!Usable(env, "stop the machine")) return env.Undefined();
        MachineOpWorker *w = new MachineOpWorker(env, core_, MachineOp::Stop);
        Napi::Promise p = w->Promise();
        w->Queue();
        return p;
    }

    Napi::Value Destroy(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!core_ || core_->closing.load()) {
            Napi::Promise::Deferred done = Napi::Promise::Deferred::New(env);
            done.Resolve(env.Undefined());
            return done.Promise();
        }
        core_->closing.store(true);
        MachineOpWorker *w = new MachineOpWorker(env, core_, MachineOp::Destroy);
        Napi::Promise p = w->Promise();
        w->Queue();
        return p;
    }

    // consoleInput(source: 0 default | 1 serial | 2 virtio, bytes) -> how many were queued
    Napi::Value ConsoleInput(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!Usable(env, "write to the console")) return env.Undefined();
        uint32_t source;
        if (info.Length() < 2 || !ToU32(info[0], &source) || source > BH_CONSOLE_VIRTIO || !info[1].IsTypedArray() ||
            info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
            return ThrowTypeError(env, "consoleInput: expected (source 0..2, bytes: Uint8Array)");
        Napi::Uint8Array bytes = info[1].As<Napi::Uint8Array>();
        size_t n = bh_machine_console_input(core_->machine, static_cast<bh_console_source>(source), bytes.Data(),
                                            bytes.ByteLength());
        return Napi::Number::New(env, static_cast<double>(n));
    }

    Napi::Value ConsoleTail(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!Usable(env, "read the console tail")) return env.Undefined();
        uint32_t max;
        if (info.Length() < 1 || !ToU32(info[0], &max)) return ThrowTypeError(env, "consoleTail: expected (max bytes)");
        std::vector<uint8_t> buf(max);
        size_t n = bh_machine_console_tail(core_->machine, buf.data(), max);
        return Napi::Buffer<uint8_t>::Copy(env, buf.data(), n);
    }

    Napi::Value VmState(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!Usable(env, "read the machine's state")) return env.Undefined();
        return Napi::Number::New(env, bh_vm_get_state(bh_machine_vm(core_->machine)));
    }

    static Napi::Object DeviceStats(Napi::Env env, const bh_virtio_stats &s) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("requests", Napi::Number::New(env, static_cast<double>(s.requests)));
        o.Set("bytesIn", Napi::Number::New(env, static_cast<double>(s.bytes_in)));
        o.Set("bytesOut", Napi::Number::New(env, static_cast<double>(s.bytes_out)));
        o.Set("interrupts", Napi::Number::New(env, static_cast<double>(s.interrupts)));
        o.Set("notifications", Napi::Number::New(env, static_cast<double>(s.notifications)));
        o.Set("broken", Napi::Number::New(env, s.broken));
        return o;
    }

    /* Guest RAM pages the host holds: the blocks allocated to the RAM memfd (shmem counts each page it
     * allocates, whether the guest, the loader or a device touched it). One memfd backs every region. */
    static uint64_t GuestResidentBytes(bh_vm *vm) {
        bh_mem_region r[4];
        size_t n = bh_mem_regions(vm, r, 4);
        struct stat st;
        if (n == 0 || fstat(r[0].memfd, &st) != 0) return 0;
        return static_cast<uint64_t>(st.st_blocks) * 512u;
    }

    Napi::Value Stats(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!Usable(env, "read the machine's stats")) return env.Undefined();
        bh_machine_stats s;
        bh_machine_get_stats(core_->machine, &s);
        bh_vm *vm = bh_machine_vm(core_->machine);
        Napi::Object o = Napi::Object::New(env);
        o.Set("exits", Napi::Number::New(env, static_cast<double>(s.vm.exits)));
        o.Set("pioExits", Napi::Number::New(env, static_cast<double>(s.vm.pio_exits)));
        o.Set("mmioExits", Napi::Number::New(env, static_cast<double>(s.vm.mmio_exits)));
        o.Set("pauses", Napi::Number::New(env, static_cast<double>(s.vm.pauses)));
        Napi::Array vcpu = Napi::Array::New(env, s.vcpus);
        for (uint32_t i = 0; i < s.vcpus; i++) vcpu.Set(i, Napi::Number::New(env, static_cast<double>(bh_vcpu_cpu_ns(vm, i))));
        o.Set("vcpuCpuNs", vcpu);
        o.Set("ioThreadCpuNs", Napi::Number::New(env, static_cast<double>(s.io_cpu_ns)));
        Napi::Array disks = Napi::Array::New(env, s.disk_count);
        for (uint32_t i = 0; i < s.disk_count; i++) disks.Set(i, DeviceStats(env, s.disks[i]));
        o.Set("disks", disks);
        o.Set("console", DeviceStats(env, s.console));
        o.Set("rng", DeviceStats(env, s.rng));
        o.Set("vsock", DeviceStats(env, s.vsock));
        o.Set("vsockConnections", Napi::Number::New(env, s.vsock_connections));
        o.Set("bootMarkers", Napi::Number::New(env, s.boot_markers));
        o.Set("firstMarkerNs", Napi::Number::New(env, static_cast<double>(s.first_marker_ns)));
        o.Set("guestResidentBytes", Napi::Number::New(env, static_cast<double>(GuestResidentBytes(vm))));
        return o;
    }

    MachineCore *core_ = nullptr;
};

// ------------------------------------------------------------------------------------------------
// new Machine(kvm, spec, onMessage). spec: { kernel: Uint8Array | string, initrd?: Uint8Array | string,
// cmdline?: string, entry: number, memoryBytes: bigint, vcpus: number, disks: [{path, readOnly, serial?}],
// virtioConsole, rng, vsock, vsockCid, vsockUds?, keepRunningOnDeviceFailure, consoleTailBytes }.
// The TypeScript layer (src/kvm/machine.ts) validates first; this checks types only.

static bool StringField(const Napi::Object &o, const char *key, std::string *out) {
    if (!o.Has(key) || o.Get(key).IsUndefined() || o.Get(key).IsNull()) return false;
    *out = o.Get(key).ToString().Utf8Value();
    return true;
}

static bool Flag(const Napi::Object &o, const char *key) { return o.Has(key) && o.Get(key).ToBoolean().Value(); }

// A file path (string) or bytes (Uint8Array, kept alive by the spec object during the constructor).
static bool Image(const Napi::Object &spec, const char *key, std::string *path, const uint8_t **data, size_t *len) {
    if (!spec.Has(key)) return true;
    Napi::Value v = spec.Get(key);
    if (v.IsUndefined() || v.IsNull()) return true;
    if (v.IsString()) {
        *path = v.As<Napi::String>().Utf8Value();
        return true;
    }
    if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
        Napi::Uint8Array a = v.As<Napi::Uint8Array>();
        *data = a.Data();
        *len = a.ByteLength();
        return true;
    }
    return false;
}

MachineWrap::MachineWrap(const Napi::CallbackInfo &info) : ObjectWrap<MachineWrap>(info) {
    Napi::Env env = info.Env();
    KvmRef *kvm = KvmArgument(info, "Machine: expected (kvm: Kvm, spec: object, onMessage: function)", "create a machine");
    if (!kvm) return;
    Napi::Object spec = info[1].As<Napi::Object>();
    bh_machine_config c{};
    std::string kernel_path, initrd_path, cmdline, uds;
    if (!Image(spec, "kernel", &kernel_path, &c.kernel, &c.kernel_len) ||
        !Image(spec, "initrd", &initrd_path, &c.initrd, &c.initrd_len)) {
        ThrowTypeError(env, "Machine: kernel and initrd must be a path or a Uint8Array");
        return;
    }
    uint32_t entry = 0;
    if (!GetU64(spec, "memoryBytes", &c.memory_bytes) || !GetU32(spec, "vcpus", &c.vcpus) ||
        !GetU32(spec, "entry", &entry) || entry > BH_LINUX_ENTRY_PVH) {
        ThrowTypeError(env, "Machine: memoryBytes, vcpus and entry are required integers");
        return;
    }
    c.entry = static_cast<bh_linux_entry>(entry);
    if (!kernel_path.empty()) c.kernel_path = kernel_path.c_str();
    if (!initrd_path.empty()) c.initrd_path = initrd_path.c_str();
    if (StringField(spec, "cmdline", &cmdline)) c.cmdline = cmdline.c_str();
    std::vector<std::string> disk_paths, disk_serials;
    std::vector<bh_machine_disk> disks;
    if (spec.Has("disks") && spec.Get("disks").IsArray()) {
        Napi::Array arr = spec.Get("disks").As<Napi::Array>();
        uint32_t n = arr.Length();
        disk_paths.resize(n), disk_serials.resize(n), disks.resize(n);
        for (uint32_t i = 0; i < n; i++) {
            if (!arr.Get(i).IsObject()) {
                ThrowTypeError(env, "Machine: disks[] must be objects");
                return;
            }
            Napi::Object d = arr.Get(i).As<Napi::Object>();
            StringField(d, "path", &disk_paths[i]);
            bool has_serial = StringField(d, "serial", &disk_serials[i]);
            disks[i] = bh_machine_disk{disk_paths[i].c_str(), Flag(d, "readOnly"), has_serial ? disk_serials[i].c_str() : nullptr};
        }
        c.disks = disks.data();
        c.disk_count = n;
    }
    c.virtio_console = Flag(spec, "virtioConsole");
    c.rng = Flag(spec, "rng");
    c.vsock = Flag(spec, "vsock");
    GetU64(spec, "vsockCid", &c.vsock_cid);
    if (StringField(spec, "vsockUds", &uds)) c.vsock_uds = uds.c_str();
    c.keep_running_on_device_failure = Flag(spec, "keepRunningOnDeviceFailure");
    uint64_t tail = 0;
    GetU64(spec, "consoleTailBytes", &tail);
    c.console_tail_bytes = static_cast<size_t>(tail);

    MachineCore *core = new MachineCore();
    core->kvm = kvm;
    KvmRefAcquire(core->kvm);
    core->holders.store(2); // this object + the ThreadSafeFunction
    core->tsfn = MachineTsfn::New(env, info[2].As<Napi::Function>(), "bulkhead:machine-events", 0, 1, core,
                                  FinalizeMachineCore, static_cast<void *>(nullptr));
    core->tsfn.Unref(env); // not running yet
    core_ = core;
    c.on_console = OnConsole;
    c.on_event = OnEvent;
    c.on_end = OnEnd;
    c.opaque = core;
    bh_error err{};
    if (bh_machine_create(core->kvm->kvm, &c, &core->machine, &err) < 0) {
        core->closing.store(true);
        ReleaseTsfn(core);
        ThrowCoreError(env, "create a machine", err);
        return;
    }
}

void InitMachine(Napi::Env env, Napi::Object exports) {
    exports.Set("Machine", MachineWrap::DefineClass(env));
    Napi::Object c = Napi::Object::New(env);
#define C(name) c.Set(#name, Napi::Number::New(env, static_cast<double>(name)));
    C(BH_MACHINE_RUNNING) C(BH_MACHINE_POWER_OFF) C(BH_MACHINE_REBOOT) C(BH_MACHINE_PANIC) C(BH_MACHINE_TRIPLE_FAULT)
    C(BH_MACHINE_CRASH) C(BH_MACHINE_DEVICE_FAILURE) C(BH_MACHINE_STOPPED) C(BH_MACHINE_EVENT_BOOT_MARKER)
    C(BH_MACHINE_EVENT_DEVICE_BROKEN) C(BH_CONSOLE_DEFAULT) C(BH_CONSOLE_SERIAL) C(BH_CONSOLE_VIRTIO)
    C(BH_MACHINE_MAX_DISKS) C(BH_POWER_MMIO_BASE) C(BH_VIRTIO_MMIO_BASE)
#undef C
    exports.Set("machineConstants", c);
}

}  // namespace bulkhead
