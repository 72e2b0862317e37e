#ifndef LOOM_HTTP_H
#define LOOM_HTTP_H
// A blocking HTTP POST through libcurl's easy interface: the calling thread sleeps in poll() until the server
// answers or the timeout passes, so waiting on a slow model server costs no CPU. (Foundation's URLSession on Linux
// drives libcurl's multi interface from Dispatch sources that wake up continuously: `loom generate qa` spent 86 s of
// CPU in 116 s waiting on llama.cpp's server that way.)
#include <stddef.h>

typedef struct {
    long status;          // HTTP status, 0 when no response arrived
    char *body;           // response body (malloc'd, NUL-terminated), NULL when none
    size_t length;        // body bytes
    double retry_after;   // seconds from a Retry-After header given in seconds, else -1
    int timed_out;        // 1 when the timeout passed
    char error[256];      // transport error text when the call returns nonzero
} loom_http_response;

// POSTs `body` to `url` with the given header lines ("Name: value"). Returns 0 when a response arrived (any status),
// else nonzero with `out->error` set. Free the response with loom_http_free. Thread-safe.
int loom_http_post(const char *url, const char *const *headers, int header_count, const char *body, size_t body_length,
                   double timeout_seconds, loom_http_response *out);
void loom_http_free(loom_http_response *response);

#endif
