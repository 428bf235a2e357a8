// Linux boot and the legacy devices a Linux guest needs (bulkhead.h "Linux boot" and "Legacy devices"), as
// functions on the addon's `linux` export that take a Vm object as their first argument.
//
// Devices belong to the Vm: they live in its VmCore's extension, so they are freed only after the VM was
// destroyed (a registered port range cannot be removed). Serial output reaches JavaScript through the VM's
// own queue, so it is delivered in order with the VM's exit messages (no byte arrives after 'stopped').
#pragma once

#include <napi.h>

namespace bulkhead {

void InitLinux(Napi::Env env, Napi::Object exports);

}  // namespace bulkhead
