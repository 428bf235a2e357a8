# native/boot.mk — the Linux loader's extras, included by native/Makefile (owned by the core):
#
#   make -C native tools        tests/out/tools/bh-boot, the standalone VMM (core + boot + devices)
#   make -C native boot-test    the loader/device tests (tests/boot_*.c) under ASan+UBSan, TAP
#   make -C native fuzz-smoke   the kernel-image fuzzer (libFuzzer + ASan + UBSan), a short run
#   make -C native test         also runs boot-test and fuzz-smoke (prerequisites added below)
#
# Included right after TEST_SRCS is defined so the boot tests, which have their own test list and
# binary (sharing the core's TAP runner, tests/tap_runner.c), stay out of the core's run_tests.

.DEFAULT_GOAL := all

BOOT_SRCS := $(sort $(wildcard boot/*.c)) devices/serial.c devices/i8042.c
BOOT_HDRS := $(wildcard boot/*.h)
BOOT_TEST_SRCS := $(sort $(wildcard tests/boot_*.c)) $(wildcard tests/boot_*.S)
BOOT_TEST_HDRS := $(wildcard tests/boot_*.h)
TEST_SRCS := $(filter-out $(BOOT_TEST_SRCS),$(TEST_SRCS))
TEST_HDRS := $(filter-out $(BOOT_TEST_HDRS),$(TEST_HDRS))
# The TAP runner and checks are shared with the core's run_tests (they stay in TEST_SRCS too).
BOOT_TAP_SRCS := tests/tap_runner.c
BOOT_TAP_HDRS := tests/tap.h tests/tap_runner.h

BOOT_CORE_SRCS = $(sort $(wildcard kvm/*.c)) devices/bus.c
BOOT_TOOL_CFLAGS := -std=gnu11 -O2 -g -pthread -Iinclude -I. -Wall -Wextra -Werror
BOOT_SAN_CFLAGS = $(BASE_CFLAGS) $(SAN)
BOOT_ALL_HDRS = include/bulkhead.h kvm/internal.h devices/bus.h $(BOOT_HDRS)

.PHONY: tools boot-test fuzz-smoke fuzz guest-init

tools: $(OUT)/tools/bh-boot

$(OUT)/tools/bh-boot: tools/bh-boot.c $(BOOT_SRCS) $(BOOT_CORE_SRCS) $(BOOT_ALL_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BOOT_TOOL_CFLAGS) tools/bh-boot.c $(BOOT_SRCS) $(BOOT_CORE_SRCS) -o $@

$(OUT)/boot_tests: $(BOOT_TEST_SRCS) $(BOOT_TAP_SRCS) $(BOOT_SRCS) $(BOOT_CORE_SRCS) $(BOOT_ALL_HDRS) \
		$(BOOT_TEST_HDRS) $(BOOT_TAP_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BOOT_SAN_CFLAGS) $(BOOT_TEST_SRCS) $(BOOT_TAP_SRCS) $(BOOT_SRCS) $(BOOT_CORE_SRCS) -o $@

boot-test: $(OUT)/boot_tests
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 ./$(OUT)/boot_tests $(BOOT_TESTS)

test: boot-test fuzz-smoke

# The fuzzer needs only the parser, the plan and the zero-page builder: no /dev/kvm, no VM
# (boot_params.c's VM writer is linked but never called: its bh_mem_write comes from a stub).
FUZZ_CC := clang
FUZZ_SRCS := fuzz/fuzz_kernel_image.c boot/kernel_image.c boot/elf.c boot/bzimage.c \
	boot/placement.c boot/e820.c boot/boot_error.c boot/boot_params.c
FUZZ_CFLAGS := -std=gnu11 -g -O1 -Iinclude -I. -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all
FUZZ_RUNS ?= 50000
FUZZ_SECONDS ?= 20

$(OUT)/fuzz_kernel_image: $(FUZZ_SRCS) $(BOOT_HDRS) include/bulkhead.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SRCS) -o $@

fuzz: $(OUT)/fuzz_kernel_image

fuzz-smoke: $(OUT)/fuzz_kernel_image
	@mkdir -p $(OUT)/fuzz-corpus
	./$(OUT)/fuzz_kernel_image -runs=$(FUZZ_RUNS) -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
		-seed=1 -artifact_prefix=$(OUT)/ $(OUT)/fuzz-corpus fuzz/seeds 2> $(OUT)/fuzz-smoke.log \
		|| { tail -40 $(OUT)/fuzz-smoke.log; echo "not ok 1 - boot_fuzz_kernel_image_smoke"; exit 1; }
	@echo "TAP version 14"; echo "1..1"
	@echo "ok 1 - boot_fuzz_kernel_image_smoke: $$(grep -Eo 'Done [0-9]+ runs' $(OUT)/fuzz-smoke.log | cut -d' ' -f2) inputs, no finding"

# The e2e test's PID 1 (test/e2e/boot.test.ts packs it into an initramfs).
guest-init: $(OUT)/guest-init/init

$(OUT)/guest-init/init: tests/guest-init/init.c
	@mkdir -p $(dir $@)
	$(CC) -static -Os -Wall -Wextra -Werror $< -o $@
