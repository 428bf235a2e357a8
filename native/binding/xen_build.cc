// The PV domain build for src/xen/build-domain.ts, synchronous and on the thread pool:
//   xenBuildPvDomain({ kernel, initrd?, cmdline?, memoryMiB, vcpus }) -> result
//   xenBuildPvDomainAsync({ ... }) -> Promise<result>
// result: { ok: true, domid, consolePort, xenstorePort, consoleMfn, xenstoreMfn, consoleGref, xenstoreGref }
//       | { ok: false, errno, message, stage }
//   xenBuildHandedOver(domid): the built domain is the caller's now (until then, exit() destroys it)
// The domain is left paused; on failure none is left (domain_build.c). The async build (~0.7 s of
// libxenguest under TCG) runs bh_xen_build_pv in a Napi::AsyncWorker, which opens its own libxenctrl
// handle, so nothing is shared with the JS thread. The promise always resolves (failures are values).
#include <string>

#include "convert.h"
#include "xen_wrap.h"

extern "C" {
#include "xen/domain_build.h"
#include "xen/host.h"
#include "xen/libs.h"
#include "xen/unfinished.h"
}

namespace bulkhead {

namespace {

// The config, copied out of JavaScript so the worker thread owns its strings.
struct BuildArgs {
    std::string kernel, initrd, cmdline;
    bool has_initrd = false, has_cmdline = false;
    uint32_t memory_mib = 0, vcpus = 0;

    bh_xen_pv_config Config() const {
        return {kernel.c_str(), has_initrd ? initrd.c_str() : nullptr, has_cmdline ? cmdline.c_str() : nullptr, memory_mib, vcpus};
    }
};

struct BuildOutcome {
    int rc = 0;
    bh_xen_pv_result result{};
    bh_xen_build_stage stage = BH_XEN_BUILD_OK;
    char err[BH_XEN_ERR_LEN] = "";
};

bool ParseArgs(const Napi::CallbackInfo &info, BuildArgs *a) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
        Napi::TypeError::New(env, "expected ({ kernel, initrd?, cmdline?, memoryMiB, vcpus })").ThrowAsJavaScriptException();
        return false;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    if (!o.Get("kernel").IsString() || !o.Get("memoryMiB").IsNumber() || !o.Get("vcpus").IsNumber()) {
        Napi::TypeError::New(env, "kernel (string), memoryMiB and vcpus (numbers) are required").ThrowAsJavaScriptException();
        return false;
    }
    a->kernel = o.Get("kernel").As<Napi::String>().Utf8Value();
    a->has_initrd = o.Get("initrd").IsString();
    a->has_cmdline = o.Get("cmdline").IsString();
    if (a->has_initrd) a->initrd = o.Get("initrd").As<Napi::String>().Utf8Value();
    if (a->has_cmdline) a->cmdline = o.Get("cmdline").As<Napi::String>().Utf8Value();
    a->memory_mib = o.Get("memoryMiB").As<Napi::Number>().Uint32Value();
    a->vcpus = o.Get("vcpus").As<Napi::Number>().Uint32Value();
    return true;
}

void Build(const BuildArgs &a, BuildOutcome *out) {
    bh_xen_pv_config cfg = a.Config();
    out->rc = bh_xen_build_pv(&cfg, &out->result, &out->stage, out->err);
}

Napi::Object OutcomeToJs(Napi::Env env, const BuildOutcome &b) {
    static const char *const stages[] = {"ok", "open", "create", "vcpus", "memory", "evtchn", "kernel", "initrd", "image"};
    Napi::Object out = Napi::Object::New(env);
    out.Set("ok", Napi::Boolean::New(env, b.rc >= 0));
    if (b.rc < 0) {
        out.Set("errno", Napi::Number::New(env, -b.rc));
        out.Set("message", b.err);
        out.Set("stage", (unsigned)b.stage < sizeof stages / sizeof stages[0] ? stages[b.stage] : "image");
        return out;
    }
    const bh_xen_pv_result &r = b.result;
    out.Set("domid", Napi::Number::New(env, r.domid));
    out.Set("consolePort", Napi::Number::New(env, r.console_port));
    out.Set("xenstorePort", Napi::Number::New(env, r.xenstore_port));
    out.Set("consoleMfn", Napi::Number::New(env, static_cast<double>(r.console_mfn)));
    out.Set("xenstoreMfn", Napi::Number::New(env, static_cast<double>(r.xenstore_mfn)));
    out.Set("consoleGref", Napi::Number::New(env, r.console_gref));
    out.Set("xenstoreGref", Napi::Number::New(env, r.xenstore_gref));
    return out;
}

class BuildWorker : public Napi::AsyncWorker {
  public:
    BuildWorker(Napi::Env env, BuildArgs args) : Napi::AsyncWorker(env, "bulkhead:xen-build"), args_(std::move(args)), deferred_(env) {}
    Napi::Promise Promise() { return deferred_.Promise(); }

    void Execute() override { Build(args_, &outcome_); }

    void OnOK() override {
        Napi::Env env = Env();
        if (!CanCallJs(env)) {
            // A built domain JavaScript can no longer receive (the environment is going away): nobody
            // else knows its id.
            if (outcome_.rc >= 0) bh_xen_unfinished_destroy(outcome_.result.domid);
            return;
        }
        deferred_.Resolve(OutcomeToJs(env, outcome_));
    }

  private:
    BuildArgs args_;
    BuildOutcome outcome_;
    QuietDeferred deferred_;
};

Napi::Value XenBuildPvDomain(const Napi::CallbackInfo &info) {
    BuildArgs a;
    if (!ParseArgs(info, &a)) return info.Env().Undefined();
    BuildOutcome b;
    Build(a, &b);
    return OutcomeToJs(info.Env(), b);
}

// xenBuildHandedOver(domid): the JS side owns the built domain now (attached, or destroyed).
Napi::Value XenBuildHandedOver(const Napi::CallbackInfo &info) {
    if (info.Length() < 1 || !info[0].IsNumber()) {
        Napi::TypeError::New(info.Env(), "expected (domid)").ThrowAsJavaScriptException();
        return info.Env().Undefined();
    }
    bh_xen_unfinished_done(info[0].As<Napi::Number>().Uint32Value());
    return info.Env().Undefined();
}

Napi::Value XenBuildPvDomainAsync(const Napi::CallbackInfo &info) {
    BuildArgs a;
    if (!ParseArgs(info, &a)) return info.Env().Undefined();
    BuildWorker *worker = new BuildWorker(info.Env(), std::move(a));
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
}

}  // namespace

void InitXenBuild(Napi::Env env, Napi::Object exports) {
    exports.Set("xenBuildPvDomain", Napi::Function::New(env, XenBuildPvDomain, "xenBuildPvDomain"));
    exports.Set("xenBuildPvDomainAsync", Napi::Function::New(env, XenBuildPvDomainAsync, "xenBuildPvDomainAsync"));
    exports.Set("xenBuildHandedOver", Napi::Function::New(env, XenBuildHandedOver, "xenBuildHandedOver"));
}

}  // namespace bulkhead
