#include "loom_http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static void global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

typedef struct {
    char *data;
    size_t length, capacity;
} buffer;

static size_t on_body(char *ptr, size_t size, size_t n, void *user) {
    buffer *b = user;
    size_t add = size * n;
    if (b->length + add + 1 > b->capacity) {
        size_t cap = b->capacity ? b->capacity : 4096;
        while (cap < b->length + add + 1) cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) return 0;  // curl reports a write error
        b->data = p;
        b->capacity = cap;
    }
    memcpy(b->data + b->length, ptr, add);
    b->length += add;
    b->data[b->length] = 0;
    return add;
}

static size_t on_header(char *ptr, size_t size, size_t n, void *user) {
    loom_http_response *r = user;
    size_t len = size * n;
    const char *name = "retry-after:";
    size_t k = strlen(name);
    if (len > k && strncasecmp(ptr, name, k) == 0) {
        char value[64];
        size_t m = len - k < sizeof value - 1 ? len - k : sizeof value - 1;
        memcpy(value, ptr + k, m);
        value[m] = 0;
        char *end = NULL;
        double v = strtod(value, &end);
        if (end != value && v >= 0) r->retry_after = v;
    }
    return len;
}

int loom_http_post(const char *url, const char *const *headers, int header_count, const char *body, size_t body_length,
                   double timeout_seconds, loom_http_response *out) {
    pthread_once(&init_once, global_init);
    memset(out, 0, sizeof *out);
    out->retry_after = -1;
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(out->error, sizeof out->error, "could not start libcurl");
        return 1;
    }
    struct curl_slist *list = NULL;
    for (int i = 0; i < header_count; i++) list = curl_slist_append(list, headers[i]);
    list = curl_slist_append(list, "Expect:");  // no 100-continue round trip for large bodies
    buffer b = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for timeouts
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_length);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    if (timeout_seconds > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout_seconds * 1000));
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    out->body = b.data;
    out->length = b.length;
    if (rc != CURLE_OK) {
        out->timed_out = rc == CURLE_OPERATION_TIMEDOUT;
        snprintf(out->error, sizeof out->error, "%s", curl_easy_strerror(rc));
        return (int)rc;
    }
    return 0;
}

void loom_http_free(loom_http_response *r) {
    free(r->body);
    r->body = NULL;
}
