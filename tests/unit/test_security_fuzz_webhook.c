/*
 * Replays tests/fuzz/corpus/webhook and tests/fuzz/regressions/webhook
 * through the fuzz target tests/fuzz/fuzz_webhook.c. The unit tests link only
 * sfk_common, so the bridge sources the target needs are compiled in here.
 */
#define FUZZ_TARGET "webhook"
#include "../../bridge/fanout.c"
#include "../../bridge/normalize.c"
#include "../../bridge/publish.c"
#include "../../bridge/webhook.c"
#include "../fuzz/fuzz_webhook.c"
#include "../fuzz/replay.h"
