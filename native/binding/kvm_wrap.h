// The Kvm class: one open /dev/kvm. VMs created from it hold a reference, so closing the Kvm object while
// VMs exist is safe: the fd is closed when the last of them is destroyed.
#pragma once

#include <atomic>
#include <napi.h>

extern "C" {
#include "bulkhead.h"
}

namespace bulkhead {

struct KvmRef {
    bh_kvm *kvm;
    std::atomic<int> refs;
};

void KvmRefAcquire(KvmRef *ref);
void KvmRefRelease(KvmRef *ref);

// The open hypervisor passed first to a constructor taking (kvm: Kvm, config: object, onMessage: function)
// (the caller acquires its own reference once it keeps it); nullptr with a JS exception pending when the arguments are
// wrong (`usage` says what was expected) or the Kvm was closed (`action` names what failed).
KvmRef *KvmArgument(const Napi::CallbackInfo &info, const char *usage, const char *action);

class KvmWrap : public Napi::ObjectWrap<KvmWrap> {
  public:
    static Napi::Function DefineClass(Napi::Env env);
    explicit KvmWrap(const Napi::CallbackInfo &info);
    ~KvmWrap() override;

    // The open hypervisor, or nullptr after close(). The caller acquires its own reference.
    KvmRef *ref() const { return ref_; }

  private:
    Napi::Value ApiVersion(const Napi::CallbackInfo &info);
    Napi::Value MaxVcpus(const Napi::CallbackInfo &info);
    Napi::Value CheckExtension(const Napi::CallbackInfo &info);
    Napi::Value Capabilities(const Napi::CallbackInfo &info);
    Napi::Value Close(const Napi::CallbackInfo &info);
    bool CheckOpen(Napi::Env env);

    KvmRef *ref_ = nullptr;
};

// The table of known capabilities with their values, as [{ name, id, value }].
Napi::Array KnownCapabilities(Napi::Env env, const bh_kvm *kvm);

}  // namespace bulkhead
