// Xen's handles for the TypeScript layer (src/xen/*.ts), thin over native/xen:
//   XenStoreHandle   read/write/mkdir/rm/ls/perms, transactions, watch/unwatch, nextEvent, fd
//   EvtchnHandle     bindUnbound/bindInterdomain/notify/unmask/unbind, pending, fd
//   GntHandle        share/map → a region id; read/write (bounds-checked copies); release; close
//   FdWatch          calls back on the JavaScript thread whenever a descriptor is readable (uv_poll)
// Failures throw an Error with .errno and .xenCall; src/xen turns them into typed errors. close()
// releases everything a handle holds (ports, regions) and later calls throw EBADF.
#include <errno.h>
#include <uv.h>

#include <map>
#include <string>
#include <vector>

#include "xen_wrap.h"

extern "C" {
#include "xen/console_ring.h"
#include "xen/evtchn.h"
#include "xen/gnttab.h"
#include "xen/xenstore.h"
}

namespace bulkhead {

static Napi::Value ThrowXen(Napi::Env env, int rc, const char *call, const char *message) {
    Napi::Error e = Napi::Error::New(env, message && *message ? message : call);
    e.Set("errno", Napi::Number::New(env, -rc));
    e.Set("xenCall", Napi::String::New(env, call));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
}

static Napi::Value Closed(Napi::Env env, const char *what) { return ThrowXen(env, -EBADF, what, "the handle is closed"); }

static bool U32Arg(const Napi::CallbackInfo &info, size_t i, uint32_t *out) {
    if (info.Length() <= i || !info[i].IsNumber()) return false;
    double d = info[i].As<Napi::Number>().DoubleValue();
    if (d < 0 || d > 4294967295.0 || d != static_cast<double>(static_cast<uint32_t>(d))) return false;
    *out = static_cast<uint32_t>(d);
    return true;
}

static bool StrArg(const Napi::CallbackInfo &info, size_t i, std::string *out) {
    if (info.Length() <= i || !info[i].IsString()) return false;
    *out = info[i].As<Napi::String>().Utf8Value();
    return true;
}

static Napi::Value BadArgs(Napi::Env env, const char *sig) {
    Napi::TypeError::New(env, std::string("expected ") + sig).ThrowAsJavaScriptException();
    return env.Undefined();
}

// ---------------------------------------------------------------------------------------------- FdWatch

class FdWatch : public Napi::ObjectWrap<FdWatch> {
  public:
    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "FdWatch",
                           {InstanceMethod("close", &FdWatch::Close), InstanceMethod("ref", &FdWatch::Ref),
                            InstanceMethod("unref", &FdWatch::Unref)});
    }
    FdWatch(const Napi::CallbackInfo &info) : Napi::ObjectWrap<FdWatch>(info) {
        Napi::Env env = info.Env();
        uint32_t fd;
        if (!U32Arg(info, 0, &fd) || info.Length() < 2 || !info[1].IsFunction()) {
            BadArgs(env, "(fd: number, onReadable: () => void)");
            return;
        }
        uv_loop_t *loop = nullptr;
        if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
            ThrowXen(env, -EIO, "uv_poll", "no event loop");
            return;
        }
        callback_ = Napi::Persistent(info[1].As<Napi::Function>());
        poll_ = new uv_poll_t;
        int rc = uv_poll_init(loop, poll_, static_cast<int>(fd));
        if (rc != 0) {
            delete poll_;
            poll_ = nullptr;
            ThrowXen(env, rc, "uv_poll_init", uv_strerror(rc));
            return;
        }
        poll_->data = this;
        env_ = env;
        uv_poll_start(poll_, UV_READABLE, OnReadable);
    }
    ~FdWatch() override { Stop(); }

  private:
    static void OnReadable(uv_poll_t *handle, int status, int events) {
        (void)status;
        (void)events;
        FdWatch *self = static_cast<FdWatch *>(handle->data);
        if (!self || self->callback_.IsEmpty()) return;
        Napi::HandleScope scope(self->env_);
        self->callback_.MakeCallback(self->env_.Global(), {});
    }
    void Stop() {
        if (!poll_) return;
        uv_poll_stop(poll_);
        poll_->data = nullptr;
        uv_close(reinterpret_cast<uv_handle_t *>(poll_), [](uv_handle_t *h) { delete reinterpret_cast<uv_poll_t *>(h); });
        poll_ = nullptr;
        callback_.Reset();
    }
    Napi::Value Close(const Napi::CallbackInfo &info) {
        Stop();
        return info.Env().Undefined();
    }
    Napi::Value Ref(const Napi::CallbackInfo &info) {
        if (poll_) uv_ref(reinterpret_cast<uv_handle_t *>(poll_));
        return info.Env().Undefined();
    }
    Napi::Value Unref(const Napi::CallbackInfo &info) {
        if (poll_) uv_unref(reinterpret_cast<uv_handle_t *>(poll_));
        return info.Env().Undefined();
    }
    uv_poll_t *poll_ = nullptr;
    Napi::FunctionReference callback_;
    Napi::Env env_ = nullptr;
};

// --------------------------------------------------------------------------------------- XenStoreHandle

class XenStoreHandle : public Napi::ObjectWrap<XenStoreHandle> {
  public:
    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "XenStoreHandle",
                           {InstanceMethod("read", &XenStoreHandle::Read), InstanceMethod("write", &XenStoreHandle::Write),
                            InstanceMethod("mkdir", &XenStoreHandle::Mkdir), InstanceMethod("rm", &XenStoreHandle::Rm),
                            InstanceMethod("ls", &XenStoreHandle::Ls), InstanceMethod("getPerms", &XenStoreHandle::GetPerms),
                            InstanceMethod("setPerms", &XenStoreHandle::SetPerms),
                            InstanceMethod("txStart", &XenStoreHandle::TxStart), InstanceMethod("txEnd", &XenStoreHandle::TxEnd),
                            InstanceMethod("watch", &XenStoreHandle::Watch), InstanceMethod("unwatch", &XenStoreHandle::Unwatch),
                            InstanceMethod("nextEvent", &XenStoreHandle::NextEvent), InstanceMethod("fd", &XenStoreHandle::Fd),
                            InstanceMethod("close", &XenStoreHandle::Close)});
    }
    XenStoreHandle(const Napi::CallbackInfo &info) : Napi::ObjectWrap<XenStoreHandle>(info) {
        char err[BH_XEN_ERR_LEN] = "";
        int rc = bh_xs_open(&xs_, err);
        if (rc < 0) ThrowXen(info.Env(), rc, "xs_open", err);
    }
    ~XenStoreHandle() override { bh_xs_close(xs_); }

  private:
    // (tx, path) of most calls.
    bool TxPath(const Napi::CallbackInfo &info, uint32_t *tx, std::string *path) { return U32Arg(info, 0, tx) && StrArg(info, 1, path); }

    Napi::Value Read(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!xs_) return Closed(env, "xs_read");
        uint32_t tx;
        std::string path;
        if (!TxPath(info, &tx, &path)) return BadArgs(env, "(tx, path)");
        char err[BH_XEN_ERR_LEN] = "", *value = nullptr;
        unsigned len = 0;
        int rc = bh_xs_read(xs_, tx, path.c_str(), &value, &len, err);
        if (rc < 0) return ThrowXen(env, rc, "xs_read", err);
        Napi::Buffer<char> out = Napi::Buffer<char>::Copy(env, value, len);
        free(value);
        return out;
    }
    Napi::Value Write(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!xs_) return Closed(env, "xs_write");
        uint32_t tx;
        std::string path;
        if (!TxPath(info, &tx, &path) || info.Length() < 3 || !info[2].IsBuffer()) return BadArgs(env, "(tx, path, data: Buffer)");
        Napi::Buffer<uint8_t> data = info[2].As<Napi::Buffer<uint8_t>>();
        char err[BH_XEN_ERR_LEN] = "";
        if (data.Length() > BH_XS_PAYLOAD_MAX) return ThrowXen(env, -E2BIG, "xs_write", "value longer than XenStore's 4096-byte payload");
        int rc = bh_xs_write(xs_, tx, path.c_str(), data.Data(), static_cast<unsigned>(data.Length()), err);
        return rc < 0 ? ThrowXen(env, rc, "xs_write", err) : env.Undefined();
    }
    Napi::Value Mkdir(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!xs_) return Closed(env, "xs_mkdir");
        uint32_t tx;
        std::string path;
        if (!TxPath(info, &tx, &path)) return BadArgs(env, "(tx, path)");
        char err[BH_XEN_ERR_LEN] = "";
        int rc = bh_xs_mkdir(xs_, tx, path.c_str(), err);
        return rc < 0 ? ThrowXen(env, rc, "xs_mkdir", err) : env.Undefined();
    }
    Napi::Value Rm(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!xs_) return Closed(env, "xs_rm");
        uint32_t tx;
        std::string path;
        if (!TxPath(info, &tx, &path)) return BadArgs(env, "(tx, path)");
        char err[BH_XEN_ERR_LEN] = "";
        int rc = bh_xs_rm(xs_, tx, path.c_str(), err);
        return rc < 0 ? ThrowXen(env, rc, "xs_rm", err) : env.Undefined();
    }
    Napi::Value Ls(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!xs_) return Closed(env, "xs_directory");
        uint32_t tx;
        std::string path;
        if (!TxPath(info, &tx, &path)) return BadArgs(env, "(tx, path)");
        char err[BH_XEN_ERR_LEN] = "", **names = nullptr;
        unsigned n = 0;
        int rc = bh_xs_directory(xs_, tx, path.c_str(), &names, &n, err);
        if (rc < 0) return ThrowXen(env, rc, "xs_directory", err);
        Napi::Array out = Napi::Array::New(env, n);
        for (unsigned i = 0; i < n; i++) out.Set(i, Napi::String::New(env, names[i], strnlen(names[i], BH_XS_PAYLOAD_MAX)));
        free(names);
        return out;
    }
    Napi::Value GetPerms(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!xs_) return Closed(env, "xs_get_permissions");
        uint32_t tx;
        std::string path;
        if (!TxPath(info, &tx, &path)) return BadArgs(env, "(tx, path)");
        char err[BH_XEN_ERR_LEN] = "";
        bh_xs_perm *perms = nullptr;
        unsigned n = 0;
        int rc = bh_xs_get_perms(xs_, tx, path.c_str(), &perms, &n, err);
        if (rc < 0) return ThrowXen(env, rc, "xs_get_permissions", err);
        Napi::Array out = Napi::Array::New(env, n);
        for (unsigned i = 0; i < n; i++) {
            Napi::Object o = Napi::Object::New(env);
            o.Set("domid", Napi::Number::New(env, perms[i].domid));
            o.Set("perms", Napi::Number::New(env, perms[i].perms));
            out.Set(i, o);
        }
        free(perms);
        return out;
    }
    Napi::Value SetPerms(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!xs_) return Closed(env, "xs_set_permissions");
        uint32_t tx;
        std::string path;
        if (!TxPath(info, &tx, &path) || info.Length() < 3 || !info[2].IsArray()) return BadArgs(env, "(tx, path, perms: {domid, perms}[])");
        Napi::Array arr = info[2].As<Napi::Array>();
        std::vector<bh_xs_perm> perms;
        for (uint32_t i = 0; i < arr.Length(); i++) {
            Napi::Object o = arr.Get(i).As<Napi::Object>();
            bh_xs_perm p{o.Get("domid").As<Napi::Number>().Uint32Value(), o.Get("perms").As<Napi::Number>().Uint32Value()};
            perms.push_back(p);
        }
        char err[BH_XEN_ERR_LEN] = "";
        int rc = bh_xs_set_perms(xs_, tx, path.c_str(), perms.data(), static_cast<unsigned>(perms.size()), err);
        return rc < 0 ? ThrowXen(env, rc, "xs_set_permissions", err) : env.Undefined();
    }
    Napi::Value TxStart(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!xs_) return Closed(env, "xs_transaction_start");
        char err[BH_XEN_ERR_LEN] = "";
        uint32_t tx = 0;
        int rc = bh_xs_tx_start(xs_, &tx, err);
        return rc < 0 ? ThrowXen(env, rc, "xs_transaction_start", err) : Napi::Number::New(env, tx);
    }
    Napi::Value TxEnd(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!xs_) return Closed(env, "xs_transaction_end");
        uint32_t tx;
        if (!U32Arg(info, 0, &tx) || info.Length() < 2 || !info[1].IsBoolean()) return BadArgs(env, "(tx, abort: boolean)");
        char err[BH_XEN_ERR_LEN] = "";
        int rc = bh_xs_tx_end(xs_, tx, info[1].As<Napi::Boolean>().Value(), err);
        return rc < 0 ? ThrowXen(env, rc, "xs_transaction_end", err) : env.Undefined();
    }
    Napi::Value Watch(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!xs_) return Closed(env, "xs_watch");
        std::string path, token;
        if (!StrArg(info, 0, &path) || !StrArg(info, 1, &token)) return BadArgs(env, "(path, token)");
        char err[BH_XEN_ERR_LEN] = "";
        int rc = bh_xs_watch(xs_, path.c_str(), token.c_str(), err);
        return rc < 0 ? ThrowXen(env, rc, "xs_watch", err) : env.Undefined();
    }
    Napi::Value Unwatch(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!xs_) return Closed(env, "xs_unwatch");
        std::string path, token;
        if (!StrArg(info, 0, &path) || !StrArg(info, 1, &token)) return BadArgs(env, "(path, token)");
        char err[BH_XEN_ERR_LEN] = "";
        int rc = bh_xs_unwatch(xs_, path.c_str(), token.c_str(), err);
        return rc < 0 ? ThrowXen(env, rc, "xs_unwatch", err) : env.Undefined();
    }
    // nextEvent() -> { path, token } | null (none queued)
    Napi::Value NextEvent(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!xs_) return Closed(env, "xs_check_watch");
        char err[BH_XEN_ERR_LEN] = "", *path = nullptr, *token = nullptr;
        int rc = bh_xs_next_event(xs_, &path, &token, err);
        if (rc < 0) return ThrowXen(env, rc, "xs_check_watch", err);
        if (rc == 0) return env.Null();
        Napi::Object o = Napi::Object::New(env);
        o.Set("path", path);
        o.Set("token", token);
        free(path);
        free(token);
        return o;
    }
    Napi::Value Fd(const Napi::CallbackInfo &info) {
        if (!xs_) return Closed(info.Env(), "xs_fileno");
        return Napi::Number::New(info.Env(), bh_xs_fileno(xs_));
    }
    Napi::Value Close(const Napi::CallbackInfo &info) {
        bh_xs_close(xs_);
        xs_ = nullptr;
        return info.Env().Undefined();
    }
    bh_xs *xs_ = nullptr;
};

// ------------------------------------------------------------------------------------------ EvtchnHandle

class EvtchnHandle : public Napi::ObjectWrap<EvtchnHandle> {
  public:
    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "EvtchnHandle",
                           {InstanceMethod("bindUnbound", &EvtchnHandle::BindUnbound),
                            InstanceMethod("bindInterdomain", &EvtchnHandle::BindInterdomain),
                            InstanceMethod("notify", &EvtchnHandle::Notify), InstanceMethod("unmask", &EvtchnHandle::Unmask),
                            InstanceMethod("unbind", &EvtchnHandle::Unbind), InstanceMethod("pending", &EvtchnHandle::Pending),
                            InstanceMethod("fd", &EvtchnHandle::Fd), InstanceMethod("close", &EvtchnHandle::Close)});
    }
    EvtchnHandle(const Napi::CallbackInfo &info) : Napi::ObjectWrap<EvtchnHandle>(info) {
        char err[BH_XEN_ERR_LEN] = "";
        int rc = bh_evtchn_open(&e_, err);
        if (rc < 0) ThrowXen(info.Env(), rc, "xenevtchn_open", err);
    }
    ~EvtchnHandle() override { bh_evtchn_close(e_); }

  private:
    Napi::Value Result(Napi::Env env, int rc, const char *call, const char *err) {
        return rc < 0 ? ThrowXen(env, rc, call, err) : Napi::Number::New(env, rc);
    }
    Napi::Value BindUnbound(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!e_) return Closed(env, "xenevtchn_bind_unbound_port");
        uint32_t dom;
        if (!U32Arg(info, 0, &dom)) return BadArgs(env, "(remoteDomid)");
        char err[BH_XEN_ERR_LEN] = "";
        return Result(env, bh_evtchn_bind_unbound(e_, dom, err), "xenevtchn_bind_unbound_port", err);
    }
    Napi::Value BindInterdomain(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!e_) return Closed(env, "xenevtchn_bind_interdomain");
        uint32_t dom, port;
        if (!U32Arg(info, 0, &dom) || !U32Arg(info, 1, &port)) return BadArgs(env, "(remoteDomid, remotePort)");
        char err[BH_XEN_ERR_LEN] = "";
        return Result(env, bh_evtchn_bind_interdomain(e_, dom, port, err), "xenevtchn_bind_interdomain", err);
    }
    Napi::Value PortCall(const Napi::CallbackInfo &info, const char *call, int (*fn)(bh_evtchn *, uint32_t, char *)) {
        Napi::Env env = info.Env();
        if (!e_) return Closed(env, call);
        uint32_t port;
        if (!U32Arg(info, 0, &port)) return BadArgs(env, "(port)");
        char err[BH_XEN_ERR_LEN] = "";
        return Result(env, fn(e_, port, err), call, err);
    }
    Napi::Value Notify(const Napi::CallbackInfo &info) { return PortCall(info, "xenevtchn_notify", bh_evtchn_notify); }
    Napi::Value Unmask(const Napi::CallbackInfo &info) { return PortCall(info, "xenevtchn_unmask", bh_evtchn_unmask); }
    Napi::Value Unbind(const Napi::CallbackInfo &info) { return PortCall(info, "xenevtchn_unbind", bh_evtchn_unbind); }
    // pending() -> port | -1 (none)
    Napi::Value Pending(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!e_) return Closed(env, "xenevtchn_pending");
        char err[BH_XEN_ERR_LEN] = "";
        int rc = bh_evtchn_pending(e_, err);
        if (rc == -EAGAIN) return Napi::Number::New(env, -1);
        return Result(env, rc, "xenevtchn_pending", err);
    }
    Napi::Value Fd(const Napi::CallbackInfo &info) {
        if (!e_) return Closed(info.Env(), "xenevtchn_fd");
        return Napi::Number::New(info.Env(), bh_evtchn_fd(e_));
    }
    Napi::Value Close(const Napi::CallbackInfo &info) {
        bh_evtchn_close(e_);
        e_ = nullptr;
        return info.Env().Undefined();
    }
    bh_evtchn *e_ = nullptr;
};

// --------------------------------------------------------------------------------------------- GntHandle

class GntHandle : public Napi::ObjectWrap<GntHandle> {
  public:
    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "GntHandle",
                           {InstanceMethod("share", &GntHandle::Share), InstanceMethod("map", &GntHandle::Map),
                            InstanceMethod("read", &GntHandle::Read), InstanceMethod("write", &GntHandle::Write),
                            InstanceMethod("release", &GntHandle::Release), InstanceMethod("regions", &GntHandle::Regions),
                            InstanceMethod("consoleRead", &GntHandle::ConsoleRead),
                            InstanceMethod("consoleWrite", &GntHandle::ConsoleWrite),
                            InstanceMethod("close", &GntHandle::Close)});
    }
    GntHandle(const Napi::CallbackInfo &info) : Napi::ObjectWrap<GntHandle>(info) {
        char err[BH_XEN_ERR_LEN] = "";
        int rc = bh_gnt_open(&g_, err);
        if (rc < 0) ThrowXen(info.Env(), rc, "xengnttab_open", err);
    }
    ~GntHandle() override { CloseAll(); }

  private:
    struct Region {
        bh_grant_region r;
        bool shared;  // ours, shared out (unshare) vs. theirs, mapped in (unmap)
    };

    // share(domid, pages, writable) -> { id, refs: number[] }
    Napi::Value Share(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!g_) return Closed(env, "xengntshr_share_pages");
        uint32_t dom, pages;
        if (!U32Arg(info, 0, &dom) || !U32Arg(info, 1, &pages) || info.Length() < 3 || !info[2].IsBoolean()) {
            return BadArgs(env, "(domid, pages, writable)");
        }
        if (pages == 0 || pages > BH_GRANT_MAX_PAGES) return ThrowXen(env, -EINVAL, "xengntshr_share_pages", "pages out of range");
        std::vector<uint32_t> refs(pages);
        char err[BH_XEN_ERR_LEN] = "";
        Region reg{{nullptr, 0}, true};
        int rc = bh_gnt_share(g_, dom, pages, info[2].As<Napi::Boolean>().Value(), refs.data(), &reg.r, err);
        if (rc < 0) return ThrowXen(env, rc, "xengntshr_share_pages", err);
        int id = next_++;
        regions_[id] = reg;
        Napi::Object out = Napi::Object::New(env);
        out.Set("id", Napi::Number::New(env, id));
        Napi::Array arr = Napi::Array::New(env, pages);
        for (uint32_t i = 0; i < pages; i++) arr.Set(i, Napi::Number::New(env, refs[i]));
        out.Set("refs", arr);
        return out;
    }
    // map(domid, refs: number[], writable) -> id
    Napi::Value Map(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!g_) return Closed(env, "xengnttab_map_domain_grant_refs");
        uint32_t dom;
        if (!U32Arg(info, 0, &dom) || info.Length() < 3 || !info[1].IsArray() || !info[2].IsBoolean()) {
            return BadArgs(env, "(domid, refs: number[], writable)");
        }
        Napi::Array arr = info[1].As<Napi::Array>();
        std::vector<uint32_t> refs;
        for (uint32_t i = 0; i < arr.Length(); i++) refs.push_back(arr.Get(i).As<Napi::Number>().Uint32Value());
        char err[BH_XEN_ERR_LEN] = "";
        Region reg{{nullptr, 0}, false};
        int rc = bh_gnt_map(g_, dom, refs.data(), static_cast<uint32_t>(refs.size()), info[2].As<Napi::Boolean>().Value(), &reg.r, err);
        if (rc < 0) return ThrowXen(env, rc, "xengnttab_map_domain_grant_refs", err);
        int id = next_++;
        regions_[id] = reg;
        return Napi::Number::New(env, id);
    }
    Region *Find(const Napi::CallbackInfo &info) {
        uint32_t id;
        if (!U32Arg(info, 0, &id)) return nullptr;
        auto it = regions_.find(static_cast<int>(id));
        return it == regions_.end() ? nullptr : &it->second;
    }
    // read(id, offset, length) -> Buffer (a copy)
    Napi::Value Read(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        Region *reg = Find(info);
        uint32_t off, len;
        if (!reg) return ThrowXen(env, -EBADF, "grant read", "no such mapping (released?)");
        if (!U32Arg(info, 1, &off) || !U32Arg(info, 2, &len)) return BadArgs(env, "(id, offset, length)");
        Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, len);
        if (bh_grant_read(&reg->r, off, out.Data(), len) < 0) return ThrowXen(env, -ERANGE, "grant read", "outside the mapping");
        return out;
    }
    // write(id, offset, data: Buffer)
    Napi::Value Write(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        Region *reg = Find(info);
        uint32_t off;
        if (!reg) return ThrowXen(env, -EBADF, "grant write", "no such mapping (released?)");
        if (!U32Arg(info, 1, &off) || info.Length() < 3 || !info[2].IsBuffer()) return BadArgs(env, "(id, offset, data: Buffer)");
        Napi::Buffer<uint8_t> data = info[2].As<Napi::Buffer<uint8_t>>();
        if (bh_grant_write(&reg->r, off, data.Data(), data.Length()) < 0) return ThrowXen(env, -ERANGE, "grant write", "outside the mapping");
        return env.Undefined();
    }
    // consoleRead(id, cap) -> Buffer: what the guest wrote to the PV console ring in the region's first page
    Napi::Value ConsoleRead(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        Region *reg = Find(info);
        uint32_t cap;
        if (!reg) return ThrowXen(env, -EBADF, "console ring read", "no such mapping (released?)");
        if (!U32Arg(info, 1, &cap)) return BadArgs(env, "(id, cap)");
        std::vector<uint8_t> buf(cap ? cap : 1);
        int n = bh_cons_read_out(reg->r.addr, static_cast<size_t>(reg->r.pages) * BH_XEN_PAGE_SIZE, buf.data(), cap);
        if (n < 0) return ThrowXen(env, n, "console ring read", n == -EPROTO ? "the ring's indices are impossible (producer more than a ring ahead)" : "the region is smaller than a console ring");
        return Napi::Buffer<uint8_t>::Copy(env, buf.data(), static_cast<size_t>(n));
    }
    // consoleWrite(id, data) -> bytes queued for the guest
    Napi::Value ConsoleWrite(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        Region *reg = Find(info);
        if (!reg) return ThrowXen(env, -EBADF, "console ring write", "no such mapping (released?)");
        if (info.Length() < 2 || !info[1].IsBuffer()) return BadArgs(env, "(id, data: Buffer)");
        Napi::Buffer<uint8_t> data = info[1].As<Napi::Buffer<uint8_t>>();
        int n = bh_cons_write_in(reg->r.addr, static_cast<size_t>(reg->r.pages) * BH_XEN_PAGE_SIZE, data.Data(), data.Length());
        if (n < 0) return ThrowXen(env, n, "console ring write", n == -EPROTO ? "the ring's indices are impossible (producer more than a ring ahead)" : "the region is smaller than a console ring");
        return Napi::Number::New(env, n);
    }
    int ReleaseOne(Region &reg, char *err) { return reg.shared ? bh_gnt_unshare(g_, &reg.r, err) : bh_gnt_unmap(g_, &reg.r, err); }
    Napi::Value Release(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        uint32_t id;
        if (!U32Arg(info, 0, &id)) return BadArgs(env, "(id)");
        auto it = regions_.find(static_cast<int>(id));
        if (it == regions_.end()) return env.Undefined();  // released already: idempotent
        char err[BH_XEN_ERR_LEN] = "";
        bool shared = it->second.shared;
        int rc = ReleaseOne(it->second, err);
        regions_.erase(it);
        return rc < 0 ? ThrowXen(env, rc, shared ? "xengntshr_unshare" : "xengnttab_unmap", err) : env.Undefined();
    }
    Napi::Value Regions(const Napi::CallbackInfo &info) { return Napi::Number::New(info.Env(), static_cast<double>(regions_.size())); }
    void CloseAll() {
        char err[BH_XEN_ERR_LEN];
        for (auto &kv : regions_) ReleaseOne(kv.second, err);
        regions_.clear();
        bh_gnt_close(g_);
        g_ = nullptr;
    }
    Napi::Value Close(const Napi::CallbackInfo &info) {
        CloseAll();
        return info.Env().Undefined();
    }
    bh_gnt *g_ = nullptr;
    std::map<int, Region> regions_;
    int next_ = 1;
};

void InitXenHandles(Napi::Env env, Napi::Object exports) {
    exports.Set("FdWatch", FdWatch::Define(env));
    exports.Set("XenStoreHandle", XenStoreHandle::Define(env));
    exports.Set("EvtchnHandle", EvtchnHandle::Define(env));
    exports.Set("GntHandle", GntHandle::Define(env));
}

}  // namespace bulkhead
