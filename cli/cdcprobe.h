/*
 * cdcprobe.h - a one-shot CometD probe for `sfk doctor`: handshake, then
 * subscribe to each CDC channel with replay -1 (new events only), then
 * disconnect. Proves the integration user may subscribe; reads no events.
 */
#ifndef SFK_CLI_CDCPROBE_H
#define SFK_CLI_CDCPROBE_H

#include <stddef.h>

#include <jansson.h>

#define CDCPROBE_RESPONSE_MAX (256 * 1024) /* larger Bayeux answers abort the probe */

/*
 * instance_url, token: from a JWT login (borrowed; the token never reaches
 * a message). api_version "61.0". channels: array of strings (borrowed).
 * Returns a new array with one {channel, ok, error?} per channel, or NULL
 * with errstr set when the handshake itself failed.
 */
json_t *cdcprobe_run(const char *instance_url, const char *token, const char *api_version,
                     const char *ca_file, json_t *channels, long timeout_ms, char *errstr,
                     size_t errlen);

#endif
