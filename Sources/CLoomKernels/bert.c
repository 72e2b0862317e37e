#include "loom_bert.h"
#include "loom_dispatch.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

// exp and erf written out so the loops vectorise (libm's expf/erff are scalar calls).
// exp: x = n ln2 + r, |r| <= ln2 / 2, Cephes' degree-6 polynomial for e^r, 2^n from the exponent bits.
static inline float exp_inline(float x) {
    x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
    float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r * r + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &e, 4);
    return y * s;
}

// Abramowitz and Stegun 7.1.26.
static inline float erf_inline(float x) {
    float a = fabsf(x);
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float p = 1.061405429f;
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    float y = 1.0f - p * t * exp_inline(-a * a);
    return x < 0 ? -y : y;
}

float loom_erf(float x) { return erf_inline(x); }
float loom_exp(float x) { return exp_inline(x); }

#define GELU_BODY                                                                                                  \
    for (size_t r = 0; r < rows; r++) {                                                                            \
        float *row = x + r * cols;                                                                                 \
        for (size_t c = 0; c < cols; c++) {                                                                        \
            float v = row[c] + bias[c];                                                                            \
            row[c] = 0.5f * v * (1.0f + erf_inline(v * 0.70710678118654752f));                                    \
        }                                                                                                          \
    }

#define BIAS_BODY                                                                                                  \
    for (size_t r = 0; r < rows; r++) {                                                                            \
        float *row = x + r * cols;                                                                                 \
        for (size_t c = 0; c < cols; c++) row[c] += bias[c];                                                       \
    }

#define LAYERNORM_BODY                                                                                             \
    _Pragma("clang fp reassociate(on)") for (size_t r = 0; r < rows; r++) {                                        \
        const float *xr = x + r * cols;                                                                            \
        const float *rr = res ? res + r * cols : 0;                                                                \
        float *o = out + r * cols;                                                                                 \
        float sum = 0;                                                                                             \
        for (size_t c = 0; c < cols; c++) {                                                                        \
            float v = xr[c] + (bias ? bias[c] : 0.0f) + (rr ? rr[c] : 0.0f);                                       \
            o[c] = v;                                                                                              \
            sum += v;                                                                                              \
        }                                                                                                          \
        float mean = sum / (float)cols;                                                                            \
        float var = 0;                                                                                             \
        for (size_t c = 0; c < cols; c++) {                                                                        \
            float d = o[c] - mean;                                                                                 \
            var += d * d;                                                                                          \
        }                                                                                                          \
        float inv = 1.0f / sqrtf(var / (float)cols + eps);                                                         \
        for (size_t c = 0; c < cols; c++) o[c] = (o[c] - mean) * inv * gamma[c] + beta[c];                         \
    }

// Per head: K transposed into scratch (head_dim x t) so scores for one query are axpy loops over the keys, then a
// softmax, then the weighted sum of values (an axpy over head_dim per key).
#define ATTENTION_BODY                                                                                             \
    _Pragma("clang fp reassociate(on)") const size_t hd = heads * head_dim;                                        \
    const size_t ld = 3 * hd;                                                                                      \
    float *kt = scratch;                                                                                           \
    float *s = scratch + head_dim * t;                                                                             \
    for (size_t h = 0; h < heads; h++) {                                                                           \
        for (size_t j = 0; j < t; j++) {                                                                           \
            const float *k = qkv + j * ld + hd + h * head_dim;                                                     \
            for (size_t d = 0; d < head_dim; d++) kt[d * t + j] = k[d];                                            \
        }                                                                                                          \
        for (size_t i = 0; i < t; i++) {                                                                           \
            const float *q = qkv + i * ld + h * head_dim;                                                          \
            for (size_t j = 0; j < t; j++) s[j] = 0;                                                               \
            for (size_t d = 0; d < head_dim; d++) {                                                                \
                float qd = q[d] * scale;                                                                           \
                const float *kd = kt + d * t;                                                                      \
                for (size_t j = 0; j < t; j++) s[j] += qd * kd[j];                                                 \
            }                                                                                                      \
            float m = s[0];                                                                                        \
            for (size_t j = 1; j < t; j++) m = s[j] > m ? s[j] : m;                                                \
            float sum = 0;                                                                                         \
            for (size_t j = 0; j < t; j++) {                                                                       \
                float e = exp_inline(s[j] - m);                                                                    \
                s[j] = e;                                                                                          \
                sum += e;                                                                                          \
            }                                                                                                      \
            float inv = 1.0f / sum;                                                                                \
            float *o = out + i * hd + h * head_dim;                                                                \
            for (size_t d = 0; d < head_dim; d++) o[d] = 0;                                                        \
            for (size_t j = 0; j < t; j++) {                                                                       \
                float p = s[j] * inv;                                                                              \
                const float *v = qkv + j * ld + 2 * hd + h * head_dim;                                             \
                for (size_t d = 0; d < head_dim; d++) o[d] += p * v[d];                                            \
            }                                                                                                      \
        }                                                                                                          \
    }

static void gelu_baseline(float *x, const float *bias, size_t rows, size_t cols) { GELU_BODY }
static void bias_baseline(float *x, const float *bias, size_t rows, size_t cols) { BIAS_BODY }
static void layernorm_baseline(float *out, const float *x, const float *bias, const float *res, const float *gamma,
                               const float *beta, size_t rows, size_t cols, float eps) {
    LAYERNORM_BODY
}
static void attention_baseline(const float *qkv, size_t t, size_t heads, size_t head_dim, float scale, float *out,
                               float *scratch) {
    ATTENTION_BODY
}

#if defined(__x86_64__)
#define AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl")))
AVX512 static void gelu_avx512(float *x, const float *bias, size_t rows, size_t cols) { GELU_BODY }
AVX512 static void bias_avx512(float *x, const float *bias, size_t rows, size_t cols) { BIAS_BODY }
AVX512 static void layernorm_avx512(float *out, const float *x, const float *bias, const float *res,
                                    const float *gamma, const float *beta, size_t rows, size_t cols, float eps) {
    LAYERNORM_BODY
}
AVX512 static void attention_avx512(const float *qkv, size_t t, size_t heads, size_t head_dim, float scale,
                                    float *out, float *scratch) {
    ATTENTION_BODY
}
#define AVX2 __attribute__((target("avx2,fma")))
AVX2 static void gelu_avx2(float *x, const float *bias, size_t rows, size_t cols) { GELU_BODY }
AVX2 static void bias_avx2(float *x, const float *bias, size_t rows, size_t cols) { BIAS_BODY }
AVX2 static void layernorm_avx2(float *out, const float *x, const float *bias, const float *res, const float *gamma,
                                const float *beta, size_t rows, size_t cols, float eps) {
    LAYERNORM_BODY
}
AVX2 static void attention_avx2(const float *qkv, size_t t, size_t heads, size_t head_dim, float scale, float *out,
                                float *scratch) {
    ATTENTION_BODY
}
#endif

// The variant by path (loom_dispatch.h): 2 = AVX-512, 1 = AVX2 + FMA, 0 = baseline.
static int variant(void) {
#if defined(__x86_64__)
    int p = loom_kernel_path();
    return p >= LOOM_PATH_AVX512 ? 2 : p >= LOOM_PATH_AVX2 ? 1 : 0;
#else
    return 0;
#endif
}

const char *loom_bert_variant(void) {
    static const char *const names[] = {"baseline x86-64", "avx2", "avx512"};
    return names[variant()];
}

#if defined(__x86_64__)
#define DISPATCH(NAME, ...)                                                                                        \
    switch (variant()) {                                                                                           \
    case 2: NAME##_avx512(__VA_ARGS__); return;                                                                    \
    case 1: NAME##_avx2(__VA_ARGS__); return;                                                                      \
    default: NAME##_baseline(__VA_ARGS__); return;                                                                 \
    }
#else
#define DISPATCH(NAME, ...) NAME##_baseline(__VA_ARGS__);
#endif

void loom_bias_gelu(float *x, const float *bias, size_t rows, size_t cols) { DISPATCH(gelu, x, bias, rows, cols) }

void loom_bias_add(float *x, const float *bias, size_t rows, size_t cols) { DISPATCH(bias, x, bias, rows, cols) }

void loom_add_layernorm(float *out, const float *x, const float *bias, const float *res, const float *gamma,
                        const float *beta, size_t rows, size_t cols, float eps) {
    DISPATCH(layernorm, out, x, bias, res, gamma, beta, rows, cols, eps)
}

void loom_attention(const float *qkv, size_t t, size_t heads, size_t head_dim, float scale, float *out,
                    float *scratch) {
    DISPATCH(attention, qkv, t, heads, head_dim, scale, out, scratch)
}
