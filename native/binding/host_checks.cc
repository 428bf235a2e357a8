// Host checks for the probe and `bulkhead doctor`: /dev/kvm, Xen's control library, AF_VSOCK; and the two
// eventfd helpers the TypeScript layer needs for irqfd/ioeventfd.
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "addon.h"
#include "convert.h"
#include "kvm_wrap.h"

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

namespace bulkhead {

// probeKvm(path?) -> { ok: true, apiVersion, maxVcpus, capabilities } | { ok: false, bhStatus, errno, message }
static Napi::Value ProbeKvm(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::string path;
    bool has_path = info.Length() > 0 && info[0].IsString();
    if (has_path) path = info[0].As<Napi::String>().Utf8Value();
    bh_kvm *kvm = nullptr;
    bh_error err{};
    Napi::Object out = Napi::Object::New(env);
    if (bh_kvm_open(has_path ? path.c_str() : nullptr, &kvm, &err) < 0) {
        out.Set("ok", Napi::Boolean::New(env, false));
        out.Set("bhStatus", Napi::String::New(env, StatusName(err.code)));
        out.Set("errno", Napi::Number::New(env, err.sys_errno));
        out.Set("message", Napi::String::New(env, err.message));
        return out;
    }
    out.Set("ok", Napi::Boolean::New(env, true));
    out.Set("apiVersion", Napi::Number::New(env, bh_kvm_api_version(kvm)));
    out.Set("maxVcpus", Napi::Number::New(env, bh_kvm_max_vcpus(kvm)));
    out.Set("capabilities", KnownCapabilities(env, kvm));
    bh_kvm_close(kvm);
    return out;
}

// dlopenCheck(names: string[]) -> { ok: true, name } | { ok: false, errors: string[] }
// Loads with RTLD_LAZY | RTLD_LOCAL and unloads at once: only answers "could this process use it".
static Napi::Value DlopenCheck(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsArray()) return ThrowTypeError(env, "dlopenCheck: expected (names: string[])");
    Napi::Array names = info[0].As<Napi::Array>();
    Napi::Array errors = Napi::Array::New(env);
    Napi::Object out = Napi::Object::New(env);
    for (uint32_t i = 0; i < names.Length(); i++) {
        Napi::Value v = names.Get(i);
        if (!v.IsString()) return ThrowTypeError(env, "dlopenCheck: names must be strings");
        std::string name = v.As<Napi::String>().Utf8Value();
        dlerror();
        void *handle = dlopen(name.c_str(), RTLD_LAZY | RTLD_LOCAL);
        if (handle) {
            dlclose(handle);
            out.Set("ok", Napi::Boolean::New(env, true));
            out.Set("name", Napi::String::New(env, name));
            return out;
        }
        const char *why = dlerror();
        errors.Set(errors.Length(), Napi::String::New(env, why ? why : (name + ": cannot be loaded").c_str()));
    }
    out.Set("ok", Napi::Boolean::New(env, false));
    out.Set("errors", errors);
    return out;
}

// vsockCheck() -> { ok: boolean, errno, message }: can this process create an AF_VSOCK socket?
static Napi::Value VsockCheck(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int e = fd < 0 ? errno : 0;
    if (fd >= 0) close(fd);
    out.Set("ok", Napi::Boolean::New(env, fd >= 0));
    out.Set("errno", Napi::Number::New(env, e));
    out.Set("message", Napi::String::New(env, e ? strerror(e) : ""));
    return out;
}

// eventfdTryRead(fd) -> bigint: the counter (and resets it), 0n if not signalled. Never blocks.
static Napi::Value EventfdTryRead(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    uint32_t fd;
    if (info.Length() < 1 || !ToU32(info[0], &fd)) return ThrowTypeError(env, "eventfdTryRead: expected (fd)");
    struct pollfd p = {static_cast<int>(fd), POLLIN, 0};
    int n = poll(&p, 1, 0);
    if (n < 0) {
        bh_error err{BH_E_SYSTEM, errno, ""};
        snprintf(err.message, sizeof err.message, "poll(eventfd %u): %s", fd, strerror(errno));
        return ThrowCoreError(env, "read eventfd", err);
    }
    if (n == 0 || !(p.revents & POLLIN)) return Napi::BigInt::New(env, static_cast<uint64_t>(0));
    uint64_t value = 0;
    if (read(static_cast<int>(fd), &value, sizeof value) != sizeof value) {
        if (errno == EAGAIN) return Napi::BigInt::New(env, static_cast<uint64_t>(0));
        bh_error err{BH_E_SYSTEM, errno, ""};
        snprintf(err.message, sizeof err.message, "read(eventfd %u): %s", fd, strerror(errno));
        return ThrowCoreError(env, "read eventfd", err);
    }
    return Napi::BigInt::New(env, value);
}

// eventfdWrite(fd, value)
static Napi::Value EventfdWrite(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    uint32_t fd;
    uint64_t value;
    if (info.Length() < 2 || !ToU32(info[0], &fd) || !ToU64(info[1], &value))
        return ThrowTypeError(env, "eventfdWrite: expected (fd, value)");
    if (write(static_cast<int>(fd), &value, sizeof value) != sizeof value) {
        bh_error err{BH_E_SYSTEM, errno, ""};
        snprintf(err.message, sizeof err.message, "write(eventfd %u): %s", fd, strerror(errno));
        return ThrowCoreError(env, "write eventfd", err);
    }
    return env.Undefined();
}

void InitHostChecks(Napi::Env env, Napi::Object exports) {
    exports.Set("probeKvm", Napi::Function::New(env, ProbeKvm, "probeKvm"));
    exports.Set("dlopenCheck", Napi::Function::New(env, DlopenCheck, "dlopenCheck"));
    exports.Set("vsockCheck", Napi::Function::New(env, VsockCheck, "vsockCheck"));
    exports.Set("eventfdTryRead", Napi::Function::New(env, EventfdTryRead, "eventfdTryRead"));
    exports.Set("eventfdWrite", Napi::Function::New(env, EventfdWrite, "eventfdWrite"));
}

}  // namespace bulkhead
