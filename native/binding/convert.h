// Conversions between JavaScript values and the C core's types, and the one way the binding throws.
// Everything here runs on the JavaScript thread.
#pragma once

#include <napi.h>
#include <stdint.h>

extern "C" {
#include "bulkhead.h"
}

namespace bulkhead {

// The name of a bh_status ("BH_E_OUT_OF_RANGE", ...), which the TypeScript layer maps to its error classes.
const char *StatusName(int status);

// Throws a JavaScript Error carrying the core's error: .bhStatus (name), .errno, message "<op>: <core message>".
// Returns undefined so callers can `return ThrowCoreError(...)`.
Napi::Value ThrowCoreError(Napi::Env env, const char *op, const bh_error &err);
Napi::Error MakeCoreError(Napi::Env env, const char *op, const bh_error &err);
// Throws a TypeError for a malformed argument (the TypeScript layer validates first; this is the backstop).
Napi::Value ThrowTypeError(Napi::Env env, const char *message);

// A non-negative integer Number or a BigInt that fits in 64 bits.
bool ToU64(const Napi::Value &value, uint64_t *out);
bool ToU32(const Napi::Value &value, uint32_t *out);
// Reads object[key] with ToU64 / ToU32; false (and no exception) if absent or malformed.
bool GetU64(const Napi::Object &obj, const char *key, uint64_t *out);
bool GetU32(const Napi::Object &obj, const char *key, uint32_t *out);

Napi::Object RegsToJs(Napi::Env env, const bh_regs &regs);
bool RegsFromJs(const Napi::Object &obj, bh_regs *regs, const char **bad_field);
Napi::Object SregsToJs(Napi::Env env, const bh_sregs &sregs);
bool SregsFromJs(const Napi::Object &obj, bh_sregs *sregs, const char **bad_field);

}  // namespace bulkhead

namespace bulkhead {

// A promise settled from an AsyncWorker's OnOK. Unlike Napi::Promise::Deferred it never throws: a worker can finish
// while Node tears the environment down (process.exit with a stop or halt check in flight), when no JavaScript may
// run and a throwing settle is a fatal error. Then the promise is simply left unsettled.
class QuietDeferred {
  public:
    explicit QuietDeferred(Napi::Env env) : env_(env) { napi_create_promise(env, &deferred_, &promise_); }
    Napi::Promise Promise() const { return Napi::Promise(env_, promise_); }
    void Resolve(napi_value value) { Settle(true, value); }
    void Reject(napi_value value) { Settle(false, value); }

  private:
    void Settle(bool ok, napi_value value) {
        if (!deferred_) return;
        napi_deferred d = deferred_;
        deferred_ = nullptr;
        if (ok)
            napi_resolve_deferred(env_, d, value);
        else
            napi_reject_deferred(env_, d, value);
        bool pending = false;
        if (napi_is_exception_pending(env_, &pending) == napi_ok && pending) {
            napi_value ignored;
            napi_get_and_clear_last_exception(env_, &ignored);
        }
    }
    napi_env env_;
    napi_deferred deferred_ = nullptr;
    napi_value promise_ = nullptr;
};

// False while Node tears the environment down: JavaScript may not run then, and node-addon-api's wrappers turn the
// refusal into a fatal error. Callbacks that arrive from native threads check this first.
bool CanCallJs(napi_env env);

// Values for QuietDeferred that never throw either (nullptr when the environment is going away).
napi_value QuietBoolean(napi_env env, bool value);
napi_value QuietUndefined(napi_env env);
napi_value QuietCoreError(napi_env env, const char *op, const bh_error &err);

}  // namespace bulkhead
