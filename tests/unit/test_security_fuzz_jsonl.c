/*
 * Replays tests/fuzz/corpus/jsonl and tests/fuzz/regressions/jsonl through the
 * fuzz target tests/fuzz/fuzz_jsonl.c (every crash the fuzzer found stays a test).
 */
#define FUZZ_TARGET "jsonl"
#include "../fuzz/fuzz_jsonl.c"
#include "../fuzz/replay.h"
