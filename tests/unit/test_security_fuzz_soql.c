/*
 * Replays tests/fuzz/corpus/soql and tests/fuzz/regressions/soql through the
 * fuzz target tests/fuzz/fuzz_soql.c. The unit tests do not link the sim's
 * library, so its SOQL sources are compiled in here.
 */
#define FUZZ_TARGET "soql"
#include "../sfsim/soql.c"
#include "../sfsim/soql_date.c"
#include "../sfsim/soql_eval.c"
#include "../sfsim/soql_fuzz.c"
#include "../fuzz/fuzz_soql.c"
#include "../fuzz/replay.h"
