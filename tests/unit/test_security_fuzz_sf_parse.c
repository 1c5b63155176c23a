/*
 * Replays tests/fuzz/corpus/sf_parse and tests/fuzz/regressions/sf_parse through the
 * fuzz target tests/fuzz/fuzz_sf_parse.c (every crash the fuzzer found stays a test).
 */
#define FUZZ_TARGET "sf_parse"
#include "../fuzz/fuzz_sf_parse.c"
#include "../fuzz/replay.h"
