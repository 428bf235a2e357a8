// The Machine class: one bh_machine (native/machine) and its messages to JavaScript.
//
// Threads: the machine's callbacks run on vCPU threads (ttyS0 output, power-device markers) and on the I/O thread
// (hvc0 output, broken devices); they copy their data and post it through one ThreadSafeFunction, so JavaScript
// receives console bytes, events and the end in the order they happened. Console bytes are batched (at most one
// queued delivery per source at a time, bounded, drops counted). Destroy runs on the thread pool: it joins every
// thread of the machine, so nothing is posted after it resolves.
#pragma once

#include <atomic>
#include <mutex>
#include <napi.h>
#include <string>

#include "kvm_wrap.h"

extern "C" {
#include "bulkhead.h"
}

namespace bulkhead {

struct MachineCore;

enum class MachineMessageKind { Console, Event, End };

struct MachineMessage {
    MachineMessageKind kind;
    bh_console_source source;
    bh_machine_event event;
    bh_machine_exit exit;
};

void MachineCallJs(Napi::Env env, Napi::Function callback, MachineCore *core, MachineMessage *message);
void FinalizeMachineCore(Napi::Env env, void *unused, MachineCore *core);

using MachineTsfn = Napi::TypedThreadSafeFunction<MachineCore, MachineMessage, MachineCallJs>;

struct ConsoleBatch {
    std::string pending;
    size_t dropped = 0;
    bool posted = false;
};

// Shared by the JavaScript object, the machine's threads and the destroy worker; freed by the last holder.
struct MachineCore {
    bh_machine *machine = nullptr;
    KvmRef *kvm = nullptr;
    MachineTsfn tsfn;
    bool tsfn_released = false;        // JavaScript thread only
    bool referenced = false;           // JavaScript thread only: the TSFN keeps the loop alive while running
    std::atomic<bool> closing{false};  // destroy requested: callbacks stop posting
    std::atomic<int> holders{0};
    std::mutex ops;                    // serializes stop/destroy on the thread pool
    std::mutex out_lock;
    ConsoleBatch out[2];               // ttyS0, hvc0
};

void InitMachine(Napi::Env env, Napi::Object exports);

}  // namespace bulkhead
