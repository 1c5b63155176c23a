/*
 * Replays tests/fuzz/corpus/cometd and tests/fuzz/regressions/cometd through the
 * fuzz target tests/fuzz/fuzz_cometd.c (every crash the fuzzer found stays a test).
 */
#define FUZZ_TARGET "cometd"
#include "../fuzz/fuzz_cometd.c"
#include "../fuzz/replay.h"
