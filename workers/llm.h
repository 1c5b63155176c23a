/*
 * llm.h - optional OpenAI-compatible chat-completions client for workloads.
 *
 * Configured by sfk-worker's shared settings (main.c): SFK_LLM_URL (the full
 * .../v1/chat/completions URL; unset = no LLM), SFK_LLM_MODEL,
 * SFK_LLM_TIMEOUT, SFK_LLM_API_KEY (secret, sent as a bearer token). A
 * workload asks it to validate/refine its rule decision and falls back to the
 * rules on ANY error (transport, status, timeout, unparseable answer).
 */
#ifndef SFK_LLM_H
#define SFK_LLM_H

#include <stddef.h>

#include "config.h"
#include "err.h"

#define LLM_RESPONSE_MAX (256 * 1024) /* bytes of one response body */
#define LLM_MODEL_MAX    128

struct llm;

/* From sfk-worker's settings. Returns NULL when SFK_LLM_URL is unset (no LLM),
 * else a new client (llm_free). */
struct llm *llm_from_config(const struct config *cfg);
void llm_free(struct llm **l);
/* The configured model name (borrowed). */
const char *llm_model(const struct llm *l);

/*
 * One chat completion with a system and a user message (borrowed), temperature 0.
 * On SFK_OK *content is a new string (free()) holding choices[0].message.content
 * and model_out the model the server named (else the configured one).
 * Errors: SFK_ERR_TIMEOUT, SFK_ERR_TRANSPORT, SFK_ERR_HTTP_5XX (any non-2xx),
 * SFK_ERR_TOO_LARGE, SFK_ERR_PARSE; errstr says why (never the API key).
 */
enum sfk_err llm_chat(struct llm *l, const char *system, const char *user, char **content,
                      char *model_out, size_t model_len, char *errstr, size_t errlen);

#endif
