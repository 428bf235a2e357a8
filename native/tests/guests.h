/* guests.h — hand-made guest programs (see guests.c for the assembly). */
#ifndef BH_TESTS_GUESTS_H
#define BH_TESTS_GUESTS_H

#include <stddef.h>
#include <stdint.h>

extern const uint8_t g_real_io[];
extern const size_t g_real_io_len;
extern const uint8_t g_real_string[];
extern const size_t g_real_string_len;
extern const uint8_t g_lm_io[];
extern const size_t g_lm_io_len;
extern const uint8_t g_mmio[];
extern const size_t g_mmio_len;
extern const uint8_t g_outside[];
extern const size_t g_outside_len;
extern const uint8_t g_shared[];
extern const size_t g_shared_len;
extern const uint8_t g_hlt[];
extern const size_t g_hlt_len;
extern const uint8_t g_ud2_64[];
extern const size_t g_ud2_64_len;
extern const uint8_t g_spin16[];
extern const size_t g_spin16_len;
extern const uint8_t g_spin64[];
extern const size_t g_spin64_len;
extern const uint8_t g_count64[];
extern const size_t g_count64_len;
extern const uint8_t g_twovcpu[];
extern const size_t g_twovcpu_len;
extern const uint8_t g_pending[];
extern const size_t g_pending_len;
extern const uint8_t g_ioev[];
extern const size_t g_ioev_len;

extern const uint8_t g_hotplug[];
extern const size_t g_hotplug_len;

extern const uint8_t g_exitloop[];
extern const size_t g_exitloop_len;

extern const uint8_t g_string_pending[];
extern const size_t g_string_pending_len;

#endif
