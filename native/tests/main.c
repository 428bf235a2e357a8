/*
 * main.c — the native test runner: TAP 14 on stdout, one forked child per test (tap_runner.c).
 *   run_tests [name ...]     run only the named tests
 * Exit status: 0 when nothing failed, 1 otherwise.
 */
#include "tap_runner.h"
#include "tests.h"

#define BH_TEST_ENTRY(name) {"", #name, test_##name},
static const tap_test all_tests[] = {BH_TEST_LIST(BH_TEST_ENTRY)};

int main(int argc, char **argv)
{
    return tap_run(all_tests, sizeof all_tests / sizeof all_tests[0], argc, argv);
}
