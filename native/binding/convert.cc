#include "convert.h"

#include <string>

namespace bulkhead {

const char *StatusName(int status) {
    switch (status) {
    case BH_OK: return "BH_OK";
    case BH_E_UNAVAILABLE: return "BH_E_UNAVAILABLE";
    case BH_E_INVALID_ARG: return "BH_E_INVALID_ARG";
    case BH_E_SYSTEM: return "BH_E_SYSTEM";
    case BH_E_STATE: return "BH_E_STATE";
    case BH_E_OUT_OF_RANGE: return "BH_E_OUT_OF_RANGE";
    case BH_E_BUSY: return "BH_E_BUSY";
    case BH_E_TIMEOUT: return "BH_E_TIMEOUT";
    case BH_E_NOMEM: return "BH_E_NOMEM";
    default: return "BH_E_UNKNOWN";
    }
}

Napi::Error MakeCoreError(Napi::Env env, const char *op, const bh_error &err) {
    std::string message = std::string(op) + ": " + (err.message[0] ? err.message : StatusName(err.code));
    Napi::Error error = Napi::Error::New(env, message);
    error.Set("bhStatus", Napi::String::New(env, StatusName(err.code)));
    error.Set("errno", Napi::Number::New(env, err.sys_errno));
    error.Set("coreMessage", Napi::String::New(env, err.message));
    return error;
}

bool CanCallJs(napi_env env) {
    napi_value obj = nullptr, value = nullptr;
    // Setting a property is refused (napi_pending_exception without an exception) once JavaScript may not run.
    return napi_create_object(env, &obj) == napi_ok && napi_get_boolean(env, true, &value) == napi_ok &&
           napi_set_named_property(env, obj, "probe", value) == napi_ok;
}

napi_value QuietBoolean(napi_env env, bool value) {
    napi_value v = nullptr;
    return napi_get_boolean(env, value, &v) == napi_ok ? v : nullptr;
}

napi_value QuietUndefined(napi_env env) {
    napi_value v = nullptr;
    return napi_get_undefined(env, &v) == napi_ok ? v : nullptr;
}

static void QuietSet(napi_env env, napi_value obj, const char *key, napi_value v) {
    if (v) napi_set_named_property(env, obj, key, v);
}

napi_value QuietCoreError(napi_env env, const char *op, const bh_error &err) {
    std::string message = std::string(op) + ": " + (err.message[0] ? err.message : StatusName(err.code));
    napi_value msg = nullptr, error = nullptr, v = nullptr;
    if (napi_create_string_utf8(env, message.c_str(), message.size(), &msg) != napi_ok ||
        napi_create_error(env, nullptr, msg, &error) != napi_ok)
        return nullptr;
    if (napi_create_string_utf8(env, StatusName(err.code), NAPI_AUTO_LENGTH, &v) == napi_ok) QuietSet(env, error, "bhStatus", v);
    if (napi_create_int32(env, err.sys_errno, &v) == napi_ok) QuietSet(env, error, "errno", v);
    if (napi_create_string_utf8(env, err.message, NAPI_AUTO_LENGTH, &v) == napi_ok) QuietSet(env, error, "coreMessage", v);
    return error;
}

Napi::Value ThrowCoreError(Napi::Env env, const char *op, const bh_error &err) {
    MakeCoreError(env, op, err).ThrowAsJavaScriptException();
    return env.Undefined();
}

Napi::Value ThrowTypeError(Napi::Env env, const char *message) {
    Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
    return env.Undefined();
}

bool ToU64(const Napi::Value &value, uint64_t *out) {
    if (value.IsBigInt()) {
        bool lossless = false;
        uint64_t v = value.As<Napi::BigInt>().Uint64Value(&lossless);
        if (!lossless) return false;
        *out = v;
        return true;
    }
    if (value.IsNumber()) {
        double d = value.As<Napi::Number>().DoubleValue();
        if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d))) return false;
        *out = static_cast<uint64_t>(d);
        return true;
    }
    return false;
}

bool ToU32(const Napi::Value &value, uint32_t *out) {
    uint64_t v;
    if (!ToU64(value, &v) || v > UINT32_MAX) return false;
    *out = static_cast<uint32_t>(v);
    return true;
}

bool GetU64(const Napi::Object &obj, const char *key, uint64_t *out) {
    if (!obj.Has(key)) return false;
    return ToU64(obj.Get(key), out);
}

bool GetU32(const Napi::Object &obj, const char *key, uint32_t *out) {
    if (!obj.Has(key)) return false;
    return ToU32(obj.Get(key), out);
}

#define BH_REG_FIELDS(X) \
    X(rax) X(rbx) X(rcx) X(rdx) X(rsi) X(rdi) X(rsp) X(rbp) X(r8) X(r9) X(r10) X(r11) X(r12) X(r13) \
    X(r14) X(r15) X(rip) X(rflags)

Napi::Object RegsToJs(Napi::Env env, const bh_regs &regs) {
    Napi::Object obj = Napi::Object::New(env);
#define X(name) obj.Set(#name, Napi::BigInt::New(env, static_cast<uint64_t>(regs.name)));
    BH_REG_FIELDS(X)
#undef X
    return obj;
}

bool RegsFromJs(const Napi::Object &obj, bh_regs *regs, const char **bad_field) {
#define X(name)                                                       \
    {                                                                 \
        uint64_t v;                                                   \
        if (!GetU64(obj, #name, &v)) {                                \
            *bad_field = #name;                                       \
            return false;                                             \
        }                                                             \
        regs->name = v;                                               \
    }
    BH_REG_FIELDS(X)
#undef X
    return true;
}

static Napi::Object SegmentToJs(Napi::Env env, const bh_segment &s) {
    Napi::Object obj = Napi::Object::New(env);
    obj.Set("base", Napi::BigInt::New(env, static_cast<uint64_t>(s.base)));
    obj.Set("limit", Napi::Number::New(env, s.limit));
    obj.Set("selector", Napi::Number::New(env, s.selector));
    obj.Set("type", Napi::Number::New(env, s.type));
    obj.Set("present", Napi::Number::New(env, s.present));
    obj.Set("dpl", Napi::Number::New(env, s.dpl));
    obj.Set("db", Napi::Number::New(env, s.db));
    obj.Set("s", Napi::Number::New(env, s.s));
    obj.Set("l", Napi::Number::New(env, s.l));
    obj.Set("g", Napi::Number::New(env, s.g));
    obj.Set("avl", Napi::Number::New(env, s.avl));
    return obj;
}

static bool SegmentFromJs(const Napi::Object &parent, const char *key, bh_segment *s) {
    if (!parent.Has(key) || !parent.Get(key).IsObject()) return false;
    Napi::Object obj = parent.Get(key).As<Napi::Object>();
    uint64_t base;
    uint32_t limit, selector, type, present, dpl, db, sf, l, g, avl;
    if (!GetU64(obj, "base", &base) || !GetU32(obj, "limit", &limit) || !GetU32(obj, "selector", &selector) ||
        !GetU32(obj, "type", &type) || !GetU32(obj, "present", &present) || !GetU32(obj, "dpl", &dpl) ||
        !GetU32(obj, "db", &db) || !GetU32(obj, "s", &sf) || !GetU32(obj, "l", &l) || !GetU32(obj, "g", &g) ||
        !GetU32(obj, "avl", &avl))
        return false;
    if (selector > 0xffff || type > 15 || dpl > 3 || present > 1 || db > 1 || sf > 1 || l > 1 || g > 1 || avl > 1)
        return false;
    s->base = base;
    s->limit = limit;
    s->selector = static_cast<uint16_t>(selector);
    s->type = static_cast<uint8_t>(type);
    s->present = static_cast<uint8_t>(present);
    s->dpl = static_cast<uint8_t>(dpl);
    s->db = static_cast<uint8_t>(db);
    s->s = static_cast<uint8_t>(sf);
    s->l = static_cast<uint8_t>(l);
    s->g = static_cast<uint8_t>(g);
    s->avl = static_cast<uint8_t>(avl);
    return true;
}

static Napi::Object DtableToJs(Napi::Env env, const bh_dtable &d) {
    Napi::Object obj = Napi::Object::New(env);
    obj.Set("base", Napi::BigInt::New(env, static_cast<uint64_t>(d.base)));
    obj.Set("limit", Napi::Number::New(env, d.limit));
    return obj;
}

static bool DtableFromJs(const Napi::Object &parent, const char *key, bh_dtable *d) {
    if (!parent.Has(key) || !parent.Get(key).IsObject()) return false;
    Napi::Object obj = parent.Get(key).As<Napi::Object>();
    uint64_t base;
    uint32_t limit;
    if (!GetU64(obj, "base", &base) || !GetU32(obj, "limit", &limit) || limit > 0xffff) return false;
    d->base = base;
    d->limit = static_cast<uint16_t>(limit);
    return true;
}

#define BH_SEG_FIELDS(X) X(cs) X(ds) X(es) X(fs) X(gs) X(ss) X(tr) X(ldt)
#define BH_CR_FIELDS(X) X(cr0, "cr0") X(cr2, "cr2") X(cr3, "cr3") X(cr4, "cr4") X(cr8, "cr8") X(efer, "efer") X(apic_base, "apicBase")

Napi::Object SregsToJs(Napi::Env env, const bh_sregs &sregs) {
    Napi::Object obj = Napi::Object::New(env);
#define X(name) obj.Set(#name, SegmentToJs(env, sregs.name));
    BH_SEG_FIELDS(X)
#undef X
    obj.Set("gdt", DtableToJs(env, sregs.gdt));
    obj.Set("idt", DtableToJs(env, sregs.idt));
#define X(field, key) obj.Set(key, Napi::BigInt::New(env, static_cast<uint64_t>(sregs.field)));
    BH_CR_FIELDS(X)
#undef X
    return obj;
}

bool SregsFromJs(const Napi::Object &obj, bh_sregs *sregs, const char **bad_field) {
#define X(name)                                    \
    if (!SegmentFromJs(obj, #name, &sregs->name)) { \
        *bad_field = #name;                        \
        return false;                              \
    }
    BH_SEG_FIELDS(X)
#undef X
    if (!DtableFromJs(obj, "gdt", &sregs->gdt)) {
        *bad_field = "gdt";
        return false;
    }
    if (!DtableFromJs(obj, "idt", &sregs->idt)) {
        *bad_field = "idt";
        return false;
    }
#define X(field, key)                      \
    {                                      \
        uint64_t v;                        \
        if (!GetU64(obj, key, &v)) {       \
            *bad_field = key;              \
            return false;                  \
        }                                  \
        sregs->field = v;                  \
    }
    BH_CR_FIELDS(X)
#undef X
    return true;
}

}  // namespace bulkhead
