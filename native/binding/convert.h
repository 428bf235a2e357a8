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
