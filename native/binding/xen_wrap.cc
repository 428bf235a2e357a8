// Xen for the TypeScript layer (src/xen/native.ts):
//   xenLibraries() -> [{ name, soname, loaded, error }]   which of Xen's libraries this process can use
//   xenHostInfo()  -> { ok: true, version, physinfo, domains } | { ok: false, errno, message }
// xenHostInfo opens libxenctrl's handle and closes it before returning: nothing outlives the call.
#include "xen_wrap.h"

#include <string>
#include <vector>

extern "C" {
#include "xen/domain_build.h"
#include "xen/host.h"
#include "xen/libs.h"
}

namespace bulkhead {

static Napi::Value XenLibraries(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    bh_xen_libs_load();
    Napi::Array out = Napi::Array::New(env);
    for (int i = 0; i < BH_XEN_LIB_COUNT; i++) {
        const bh_xen_lib_status *st = bh_xen_lib_info(static_cast<bh_xen_lib>(i));
        Napi::Object o = Napi::Object::New(env);
        o.Set("name", st->name);
        o.Set("soname", st->soname);
        o.Set("loaded", Napi::Boolean::New(env, st->loaded != 0));
        o.Set("error", st->loaded ? Napi::Value(env.Null()) : Napi::Value(Napi::String::New(env, st->error)));
        out.Set(static_cast<uint32_t>(i), o);
    }
    return out;
}

static Napi::Object Failure(Napi::Env env, int rc, const char *message) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("ok", Napi::Boolean::New(env, false));
    o.Set("errno", Napi::Number::New(env, -rc));
    o.Set("message", message);
    return o;
}

static Napi::Object DomainToJs(Napi::Env env, const bh_xen_dominfo &d) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("domid", Napi::Number::New(env, d.domid));
    o.Set("flags", Napi::Number::New(env, d.flags));
    o.Set("totPages", Napi::Number::New(env, static_cast<double>(d.tot_pages)));
    o.Set("maxPages", Napi::Number::New(env, static_cast<double>(d.max_pages)));
    o.Set("cpuTimeNs", Napi::Number::New(env, static_cast<double>(d.cpu_time_ns)));
    o.Set("onlineVcpus", Napi::Number::New(env, d.online_vcpus));
    o.Set("maxVcpuId", Napi::Number::New(env, d.max_vcpu_id));
    o.Set("handle", Napi::Buffer<uint8_t>::Copy(env, d.handle, sizeof d.handle));
    return o;
}

// xenDomain(domid) -> { ok: true, domain } | { ok: false, errno, message }
static Napi::Value XenHostInfo(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    char err[BH_XEN_ERR_LEN] = "";
    bh_xen_host *host = nullptr;
    int rc = bh_xen_host_open(&host, err);
    if (rc < 0) return Failure(env, rc, err);
    bh_xen_version ver;
    bh_xen_physinfo phys;
    std::vector<bh_xen_dominfo> doms;
    if ((rc = bh_xen_host_version(host, &ver, err)) < 0 || (rc = bh_xen_host_physinfo(host, &phys, err)) < 0) {
        bh_xen_host_close(host);
        return Failure(env, rc, err);
    }
    // The list in batches: Xen returns domains from `first` on, in domid order.
    const unsigned batch = 256;
    uint32_t first = 0;
    for (;;) {
        size_t at = doms.size();
        doms.resize(at + batch);
        unsigned n = 0;
        if ((rc = bh_xen_host_domains(host, first, doms.data() + at, batch, &n, err)) < 0) {
            bh_xen_host_close(host);
            return Failure(env, rc, err);
        }
        doms.resize(at + n);
        if (n < batch || n == 0) break;
        first = doms.back().domid + 1;
        if (first > 0x7fef) break;  // DOMID_FIRST_RESERVED: no ordinary domain beyond
    }
    bh_xen_host_close(host);

    Napi::Object out = Napi::Object::New(env);
    out.Set("ok", Napi::Boolean::New(env, true));
    Napi::Object v = Napi::Object::New(env);
    v.Set("major", Napi::Number::New(env, ver.major));
    v.Set("minor", Napi::Number::New(env, ver.minor));
    v.Set("extra", ver.extra);
    out.Set("version", v);
    Napi::Object p = Napi::Object::New(env);
    p.Set("nrCpus", Napi::Number::New(env, phys.nr_cpus));
    p.Set("cpuKhz", Napi::Number::New(env, phys.cpu_khz));
    p.Set("threadsPerCore", Napi::Number::New(env, phys.threads_per_core));
    p.Set("coresPerSocket", Napi::Number::New(env, phys.cores_per_socket));
    p.Set("nrNodes", Napi::Number::New(env, phys.nr_nodes));
    p.Set("capabilities", Napi::Number::New(env, phys.capabilities));
    p.Set("totalPages", Napi::Number::New(env, static_cast<double>(phys.total_pages)));
    p.Set("freePages", Napi::Number::New(env, static_cast<double>(phys.free_pages)));
    p.Set("scrubPages", Napi::Number::New(env, static_cast<double>(phys.scrub_pages)));
    p.Set("outstandingPages", Napi::Number::New(env, static_cast<double>(phys.outstanding_pages)));
    out.Set("physinfo", p);
    Napi::Array list = Napi::Array::New(env, doms.size());
    for (size_t i = 0; i < doms.size(); i++) list.Set(static_cast<uint32_t>(i), DomainToJs(env, doms[i]));
    out.Set("domains", list);
    return out;
}

static Napi::Value XenDomain(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) {
        Napi::TypeError::New(env, "expected (domid)").ThrowAsJavaScriptException();
        return env.Undefined();
    }
    uint32_t domid = info[0].As<Napi::Number>().Uint32Value();
    char err[BH_XEN_ERR_LEN] = "";
    bh_xen_host *host = nullptr;
    int rc = bh_xen_host_open(&host, err);
    if (rc < 0) return Failure(env, rc, err);
    bh_xen_dominfo d;
    rc = bh_xen_host_domain(host, domid, &d, err);
    bh_xen_host_close(host);
    if (rc < 0) return Failure(env, rc, err);
    Napi::Object out = Napi::Object::New(env);
    out.Set("ok", Napi::Boolean::New(env, true));
    out.Set("domain", DomainToJs(env, d));
    return out;
}

// xenDomainOp(op: 'pause' | 'unpause' | 'destroy', domid) -> { ok: true } | { ok: false, errno, message }
static Napi::Value XenDomainOp(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
        Napi::TypeError::New(env, "expected (op, domid)").ThrowAsJavaScriptException();
        return env.Undefined();
    }
    std::string name = info[0].As<Napi::String>().Utf8Value();
    bh_xen_domain_op op = name == "pause" ? BH_XEN_DOMAIN_PAUSE : name == "unpause" ? BH_XEN_DOMAIN_UNPAUSE : BH_XEN_DOMAIN_DESTROY;
    if (name != "pause" && name != "unpause" && name != "destroy") {
        Napi::TypeError::New(env, "op must be pause, unpause or destroy").ThrowAsJavaScriptException();
        return env.Undefined();
    }
    uint32_t domid = info[1].As<Napi::Number>().Uint32Value();
    char err[BH_XEN_ERR_LEN] = "";
    bh_xen_host *host = nullptr;
    int rc = bh_xen_host_open(&host, err);
    if (rc < 0) return Failure(env, rc, err);
    rc = bh_xen_host_domain_op(host, domid, op, err);
    bh_xen_host_close(host);
    if (rc < 0) return Failure(env, rc, err);
    Napi::Object out = Napi::Object::New(env);
    out.Set("ok", Napi::Boolean::New(env, true));
    return out;
}

// xenDomainSetMaxMem(domid, kib) -> { ok: true } | { ok: false, errno, message }   (ESRCH: no such domain)
static Napi::Value XenDomainSetMaxMem(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
        Napi::TypeError::New(env, "expected (domid, kib)").ThrowAsJavaScriptException();
        return env.Undefined();
    }
    double kib = info[1].As<Napi::Number>().DoubleValue();
    if (!(kib >= 0 && kib <= 9007199254740991.0)) {  // a safe integer: the TS layer checks the range
        Napi::RangeError::New(env, "kib must be a non-negative safe integer").ThrowAsJavaScriptException();
        return env.Undefined();
    }
    uint32_t domid = info[0].As<Napi::Number>().Uint32Value();
    char err[BH_XEN_ERR_LEN] = "";
    bh_xen_host *host = nullptr;
    int rc = bh_xen_host_open(&host, err);
    if (rc < 0) return Failure(env, rc, err);
    rc = bh_xen_host_domain_setmaxmem(host, domid, static_cast<uint64_t>(kib), err);
    bh_xen_host_close(host);
    if (rc < 0) return Failure(env, rc, err);
    Napi::Object out = Napi::Object::New(env);
    out.Set("ok", Napi::Boolean::New(env, true));
    return out;
}

// xenIntroduceDomain(domid, storeMfn, storePort) / xenReleaseDomain(domid) -> { ok } | failure
static Napi::Value XenIntroduceDomain(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber()) {
        Napi::TypeError::New(env, "expected (domid, storeMfn, storePort)").ThrowAsJavaScriptException();
        return env.Undefined();
    }
    char err[BH_XEN_ERR_LEN] = "";
    int rc = bh_xen_introduce_domain(info[0].As<Napi::Number>().Uint32Value(), static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value()),
                                     info[2].As<Napi::Number>().Uint32Value(), err);
    if (rc < 0) return Failure(env, rc, err);
    Napi::Object out = Napi::Object::New(env);
    out.Set("ok", Napi::Boolean::New(env, true));
    return out;
}

static Napi::Value XenReleaseDomain(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) {
        Napi::TypeError::New(env, "expected (domid)").ThrowAsJavaScriptException();
        return env.Undefined();
    }
    char err[BH_XEN_ERR_LEN] = "";
    int rc = bh_xen_release_domain(info[0].As<Napi::Number>().Uint32Value(), err);
    if (rc < 0) return Failure(env, rc, err);
    Napi::Object out = Napi::Object::New(env);
    out.Set("ok", Napi::Boolean::New(env, true));
    return out;
}

void InitXen(Napi::Env env, Napi::Object exports) {
    exports.Set("xenDomain", Napi::Function::New(env, XenDomain, "xenDomain"));
    exports.Set("xenDomainSetMaxMem", Napi::Function::New(env, XenDomainSetMaxMem, "xenDomainSetMaxMem"));
    exports.Set("xenIntroduceDomain", Napi::Function::New(env, XenIntroduceDomain, "xenIntroduceDomain"));
    exports.Set("xenReleaseDomain", Napi::Function::New(env, XenReleaseDomain, "xenReleaseDomain"));
    exports.Set("xenDomainOp", Napi::Function::New(env, XenDomainOp, "xenDomainOp"));
    exports.Set("xenLibraries", Napi::Function::New(env, XenLibraries, "xenLibraries"));
    exports.Set("xenHostInfo", Napi::Function::New(env, XenHostInfo, "xenHostInfo"));
}

}  // namespace bulkhead
