/*
 * boot_main.c — runs the boot tests (tap_runner.c): `boot_tests [name ...]`, reported as
 * "boot_<name>". Exit 0 when nothing failed.
 */
#include "boot_tests.h"
#include "tap_runner.h"

#define BT_ENTRY(name) {"boot_", #name, test_##name},
static const tap_test all_tests[] = {BOOT_TEST_LIST(BT_ENTRY)};

int main(int argc, char **argv)
{
    return tap_run(all_tests, sizeof all_tests / sizeof all_tests[0], argc, argv);
}
