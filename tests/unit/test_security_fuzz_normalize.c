/*
 * Replays tests/fuzz/corpus/normalize and tests/fuzz/regressions/normalize through the
 * fuzz target tests/fuzz/fuzz_normalize.c (every crash the fuzzer found stays a test).
 */
#define FUZZ_TARGET "normalize"
#include "../fuzz/fuzz_normalize.c"
#include "../fuzz/replay.h"
