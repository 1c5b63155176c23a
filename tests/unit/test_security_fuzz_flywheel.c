/*
 * Replays tests/fuzz/corpus/flywheel and tests/fuzz/regressions/flywheel through the
 * fuzz target tests/fuzz/fuzz_flywheel.c (every crash the fuzzer found stays a test).
 */
#define FUZZ_TARGET "flywheel"
#include "../fuzz/fuzz_flywheel.c"
#include "../fuzz/replay.h"
