#include "kvm_wrap.h"

#include <string>

#include "addon.h"
#include "convert.h"

namespace bulkhead {

void KvmRefAcquire(KvmRef *ref) { ref->refs.fetch_add(1); }

void KvmRefRelease(KvmRef *ref) {
    if (ref->refs.fetch_sub(1) == 1) {
        bh_kvm_close(ref->kvm);
        delete ref;
    }
}

KvmRef *KvmArgument(const Napi::CallbackInfo &info, const char *usage, const char *action) {
    Napi::Env env = info.Env();
    AddonData *data = env.GetInstanceData<AddonData>();
    if (info.Length() < 3 || !info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(data->kvm_ctor.Value()) ||
        !info[1].IsObject() || !info[2].IsFunction()) {
        ThrowTypeError(env, usage);
        return nullptr;
    }
    KvmRef *ref = Napi::ObjectWrap<KvmWrap>::Unwrap(info[0].As<Napi::Object>())->ref();
    if (!ref) {
        bh_error err{BH_E_STATE, 0, "the hypervisor handle has been closed"};
        ThrowCoreError(env, action, err);
        return nullptr;
    }
    return ref;
}

Napi::Function KvmWrap::DefineClass(Napi::Env env) {
    return ObjectWrap<KvmWrap>::DefineClass(env, "Kvm",
                                            {
                                                InstanceMethod("apiVersion", &KvmWrap::ApiVersion),
                                                InstanceMethod("maxVcpus", &KvmWrap::MaxVcpus),
                                                InstanceMethod("checkExtension", &KvmWrap::CheckExtension),
                                                InstanceMethod("capabilities", &KvmWrap::Capabilities),
                                                InstanceMethod("close", &KvmWrap::Close),
                                            });
}

// new Kvm(path?: string)
KvmWrap::KvmWrap(const Napi::CallbackInfo &info) : ObjectWrap<KvmWrap>(info) {
    Napi::Env env = info.Env();
    std::string path;
    bool has_path = info.Length() > 0 && !info[0].IsUndefined() && !info[0].IsNull();
    if (has_path) {
        if (!info[0].IsString()) {
            ThrowTypeError(env, "Kvm: path must be a string");
            return;
        }
        path = info[0].As<Napi::String>().Utf8Value();
    }
    bh_kvm *kvm = nullptr;
    bh_error err{};
    if (bh_kvm_open(has_path ? path.c_str() : nullptr, &kvm, &err) < 0) {
        ThrowCoreError(env, "open /dev/kvm", err);
        return;
    }
    ref_ = new KvmRef{kvm, {1}};
}

KvmWrap::~KvmWrap() {
    if (ref_) KvmRefRelease(ref_);
}

bool KvmWrap::CheckOpen(Napi::Env env) {
    if (ref_) return true;
    bh_error err{BH_E_STATE, 0, "the hypervisor handle has been closed"};
    ThrowCoreError(env, "kvm", err);
    return false;
}

Napi::Value KvmWrap::ApiVersion(const Napi::CallbackInfo &info) {
    if (!CheckOpen(info.Env())) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), bh_kvm_api_version(ref_->kvm));
}

Napi::Value KvmWrap::MaxVcpus(const Napi::CallbackInfo &info) {
    if (!CheckOpen(info.Env())) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), bh_kvm_max_vcpus(ref_->kvm));
}

Napi::Value KvmWrap::CheckExtension(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    uint32_t cap;
    if (info.Length() < 1 || !ToU32(info[0], &cap)) return ThrowTypeError(env, "checkExtension: cap must be a uint32");
    return Napi::Number::New(env, bh_kvm_check_extension(ref_->kvm, cap));
}

Napi::Array KnownCapabilities(Napi::Env env, const bh_kvm *kvm) {
    size_t count = 0;
    const bh_kvm_cap_info *caps = bh_kvm_known_caps(&count);
    Napi::Array out = Napi::Array::New(env, count);
    for (size_t i = 0; i < count; i++) {
        Napi::Object cap = Napi::Object::New(env);
        cap.Set("name", Napi::String::New(env, caps[i].name));
        cap.Set("id", Napi::Number::New(env, caps[i].id));
        cap.Set("value", Napi::Number::New(env, bh_kvm_check_extension(kvm, caps[i].id)));
        out.Set(static_cast<uint32_t>(i), cap);
    }
    return out;
}

Napi::Value KvmWrap::Capabilities(const Napi::CallbackInfo &info) {
    if (!CheckOpen(info.Env())) return info.Env().Undefined();
    return KnownCapabilities(info.Env(), ref_->kvm);
}

Napi::Value KvmWrap::Close(const Napi::CallbackInfo &info) {
    if (ref_) {
        KvmRefRelease(ref_);
        ref_ = nullptr;
    }
    return info.Env().Undefined();
}

void InitKvm(Napi::Env env, Napi::Object exports, AddonData *data) {
    Napi::Function ctor = KvmWrap::DefineClass(env);
    data->kvm_ctor = Napi::Persistent(ctor);
    exports.Set("Kvm", ctor);
}

}  // namespace bulkhead
