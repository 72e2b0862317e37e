// The trainer's kernels (see include/tensor_kernels.h). Plain loops the compiler vectorises; the target is built
// with -O2 even in debug builds (Package.swift) so tests and `make demo` do not crawl. Sums that decide a result
// (norms, softmax denominators, losses) accumulate in double.
#include "tensor_kernels.h"
#include <math.h>
#include <string.h>

void tk_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, size_t N, size_t C, float eps) {
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float *y = out + n * C;
        double ss = 0;
        for (size_t i = 0; i < C; i++) ss += (double)x[i] * x[i];
        float r = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
        rstd[n] = r;
        for (size_t i = 0; i < C; i++) y[i] = (x[i] * r) * weight[i];
    }
}

void tk_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                         const float *rstd, size_t N, size_t C) {
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C, *dy = dout + n * C;
        float *dx = dinp + n * C;
        float r = rstd[n];
        double dot = 0;  // sum over i of (dy * w) * xhat
        for (size_t i = 0; i < C; i++) {
            float xhat = x[i] * r;
            dot += (double)(dy[i] * weight[i]) * xhat;
            dweight[i] += dy[i] * xhat;
        }
        float mean = (float)(dot / (double)C);
        for (size_t i = 0; i < C; i++) {
            float xhat = x[i] * r;
            dx[i] += r * (dy[i] * weight[i] - xhat * mean);
        }
    }
}

static void rope(float *x, const int32_t *pos, const float *cosT, const float *sinT, size_t N, size_t heads, size_t hd,
                 float sign) {
    size_t half = hd / 2;
    for (size_t n = 0; n < N; n++) {
        const float *c = cosT + (size_t)pos[n] * half, *s = sinT + (size_t)pos[n] * half;
        for (size_t h = 0; h < heads; h++) {
            float *v = x + (n * heads + h) * hd;
            for (size_t i = 0; i < half; i++) {
                float a = v[i], b = v[i + half], si = sign * s[i];
                v[i] = a * c[i] - b * si;
                v[i + half] = b * c[i] + a * si;
            }
        }
    }
}

void tk_rope_forward(float *x, const int32_t *pos, const float *cosTable, const float *sinTable, size_t N,
                     size_t heads, size_t hd) {
    rope(x, pos, cosTable, sinTable, N, heads, hd, 1.0f);
}

void tk_rope_backward(float *dx, const int32_t *pos, const float *cosTable, const float *sinTable, size_t N,
                      size_t heads, size_t hd) {
    rope(dx, pos, cosTable, sinTable, N, heads, hd, -1.0f);
}

void tk_swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void tk_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float g = gate[i], sig = 1.0f / (1.0f + expf(-g)), silu = g * sig;
        float d = dout[i];
        dup[i] = d * silu;
        dgate[i] = d * up[i] * sig * (1.0f + g * (1.0f - sig));
    }
}

// GELU, tanh approximation (PyTorch's gelu(approximate="tanh"), transformers' gelu_pytorch_tanh):
// gelu(x) = 0.5 x (1 + tanh(c (x + 0.044715 x^3))), c = sqrt(2 / pi).
#define TK_GELU_C 0.7978845608028654f
void tk_geglu_forward(float *out, const float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = 0.5f * g * (1.0f + tanhf(TK_GELU_C * (g + 0.044715f * g * g * g))) * up[i];
    }
}

void tk_geglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float g = gate[i], t = tanhf(TK_GELU_C * (g + 0.044715f * g * g * g));
        float gelu = 0.5f * g * (1.0f + t);
        float dgelu = 0.5f * (1.0f + t) + 0.5f * g * (1.0f - t * t) * TK_GELU_C * (1.0f + 3.0f * 0.044715f * g * g);
        float d = dout[i];
        dup[i] = d * gelu;
        dgate[i] = d * up[i] * dgelu;
    }
}

void tk_attention_softmax_forward(float *s, const int32_t *segStart, size_t T, float scale) {
    for (size_t t = 0; t < T; t++) {
        float *row = s + t * T;
        size_t lo = (size_t)segStart[t];
        float mx = -INFINITY;
        for (size_t j = lo; j <= t; j++) {
            row[j] *= scale;
            if (row[j] > mx) mx = row[j];
        }
        double sum = 0;
        for (size_t j = lo; j <= t; j++) {
            float e = expf(row[j] - mx);
            row[j] = e;
            sum += e;
        }
        float inv = (float)(1.0 / sum);
        for (size_t j = 0; j < lo; j++) row[j] = 0;
        for (size_t j = lo; j <= t; j++) row[j] *= inv;
        for (size_t j = t + 1; j < T; j++) row[j] = 0;
    }
}

void tk_attention_softmax_backward(float *dp, const float *p, const int32_t *segStart, size_t T, float scale) {
    for (size_t t = 0; t < T; t++) {
        float *d = dp + t * T;
        const float *pr = p + t * T;
        size_t lo = (size_t)segStart[t];
        double dot = 0;
        for (size_t j = lo; j <= t; j++) dot += (double)pr[j] * d[j];
        float fd = (float)dot;
        for (size_t j = 0; j < lo; j++) d[j] = 0;
        for (size_t j = lo; j <= t; j++) d[j] = pr[j] * (d[j] - fd) * scale;
        for (size_t j = t + 1; j < T; j++) d[j] = 0;
    }
}

// One row: replaces logits by w * (softmax - onehot(y)) and returns -log p(y). Both cross-entropy entry points
// use it.
static double cross_entropy_row(float *row, int32_t y, float w, size_t V) {
    float mx = -INFINITY;
    for (size_t i = 0; i < V; i++) mx = row[i] > mx ? row[i] : mx;
    double sum = 0;
    for (size_t i = 0; i < V; i++) {
        float e = expf(row[i] - mx);
        row[i] = e;
        sum += e;
    }
    // loss = logsumexp - logit[y] = log(sum) - log(e_y)   (e_y = exp(logit[y] - mx))
    double loss = log(sum) - log((double)row[y]);
    float inv = (float)(1.0 / sum) * w;
    for (size_t i = 0; i < V; i++) row[i] *= inv;
    row[y] -= w;
    return loss;
}

double tk_cross_entropy_forward_backward(float *logits, const int32_t *targets, size_t N, size_t V, float scale) {
    double total = 0;
    for (size_t n = 0; n < N; n++) {
        float *row = logits + n * V;
        if (targets[n] < 0) {
            memset(row, 0, V * sizeof(float));
            continue;
        }
        total += cross_entropy_row(row, targets[n], scale, V);
    }
    return total;
}

double tk_cross_entropy_weighted(float *logits, const int32_t *targets, const float *weights, size_t N, size_t V) {
    double total = 0;
    for (size_t n = 0; n < N; n++) {
        float *row = logits + n * V;
        if (targets[n] < 0 || weights[n] == 0) {
            memset(row, 0, V * sizeof(float));
            continue;
        }
        total += (double)weights[n] * cross_entropy_row(row, targets[n], weights[n], V);
    }
    return total;
}

void tk_target_logprobs(float *out, const float *logits, const int32_t *targets, size_t N, size_t V) {
    for (size_t n = 0; n < N; n++) {
        const float *row = logits + n * V;
        int32_t y = targets[n];
        if (y < 0) {
            out[n] = 0;
            continue;
        }
        float mx = -INFINITY;
        for (size_t i = 0; i < V; i++) mx = row[i] > mx ? row[i] : mx;
        double sum = 0;
        for (size_t i = 0; i < V; i++) sum += exp((double)row[i] - mx);
        out[n] = (float)((double)row[y] - mx - log(sum));
    }
}

void tk_target_logprobs_greedy(float *out, uint8_t *greedy, const float *logits, const int32_t *targets, size_t N, size_t V) {
    for (size_t n = 0; n < N; n++) {
        const float *row = logits + n * V;
        int32_t y = targets[n];
        if (y < 0) {
            out[n] = 0;
            greedy[n] = 1;
            continue;
        }
        float mx = -INFINITY;
        size_t arg = 0;
        for (size_t i = 0; i < V; i++)
            if (row[i] > mx) {
                mx = row[i];
                arg = i;
            }
        double sum = 0;
        for (size_t i = 0; i < V; i++) sum += exp((double)row[i] - mx);
        out[n] = (float)((double)row[y] - mx - log(sum));
        greedy[n] = arg == (size_t)y;
    }
}

void tk_adamw(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1, float beta2,
              float eps, float weightDecay, float bias1, float bias2) {
    // torch.optim.AdamW (foreach=False): p *= 1 - lr*wd; m, v moments; p -= lr * mhat / (sqrt(vhat) + eps),
    // with mhat = m / bias1 and sqrt(vhat) = sqrt(v) / sqrt(bias2).
    float decay = 1.0f - lr * weightDecay;
    float stepSize = lr / bias1;
    float sqrtBias2 = sqrtf(bias2);
    for (size_t i = 0; i < n; i++) {
        float g = grad[i];
        param[i] *= decay;
        m[i] = beta1 * m[i] + (1.0f - beta1) * g;
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        float denom = sqrtf(v[i]) / sqrtBias2 + eps;
        param[i] -= stepSize * (m[i] / denom);
    }
}

double tk_sum_squares(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

void tk_scale(float *x, size_t n, float s) {
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

void tk_add_bias(float *x, const float *bias, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) x[r * cols + c] += bias[c];
}

void tk_add(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

void tk_softcap_forward(float *x, float *kept, size_t n, float cap) {
    for (size_t i = 0; i < n; i++) {
        x[i] = cap * tanhf(x[i] / cap);
        kept[i] = x[i];
    }
}

void tk_softcap_backward(float *dx, const float *kept, size_t n, float cap) {
    for (size_t i = 0; i < n; i++) {
        float t = kept[i] / cap;
        dx[i] *= 1.0f - t * t;
    }
}

// C[m x n] = A[m x k] · B[n x k]ᵀ (+ C when accumulate), for a few rows of A (batched decoding: m sequences, B a
// weight matrix). B is streamed once, row by row, each row used for every row of A while it is in L1: no packing of
// B (OpenBLAS's sgemm copies all of B into panels on every call, which for m ≤ 16 costs more than the products).
// Sums in 16 lanes then across the lanes: another order than sgemm's, within the same float32 error bound.
typedef float tk_v16 __attribute__((vector_size(64), aligned(4)));
typedef float tk_v8 __attribute__((vector_size(32), aligned(4)));
typedef float tk_v4 __attribute__((vector_size(16), aligned(4)));

// 16 lanes to one: halves added pairwise (8, 4, then 2 and 1 lanes).
#define TK_HSUM16(s, out)                                                                                             \
    do {                                                                                                              \
        tk_v8 h8 = __builtin_shufflevector(s, s, 0, 1, 2, 3, 4, 5, 6, 7) +                                            \
                   __builtin_shufflevector(s, s, 8, 9, 10, 11, 12, 13, 14, 15);                                       \
        tk_v4 h4 = __builtin_shufflevector(h8, h8, 0, 1, 2, 3) + __builtin_shufflevector(h8, h8, 4, 5, 6, 7);         \
        out = (h4[0] + h4[2]) + (h4[1] + h4[3]);                                                                      \
    } while (0)

// One output: row a of A against row b of B.
#define TK_DOT1(a, b, out)                                                                                            \
    do {                                                                                                              \
        tk_v16 acc = {0};                                                                                             \
        size_t p = 0;                                                                                                 \
        for (; p + 16 <= k; p += 16) acc += *(const tk_v16 *)((a) + p) * *(const tk_v16 *)((b) + p);                  \
        TK_HSUM16(acc, out);                                                                                          \
        for (; p < k; p++) out += (a)[p] * (b)[p];                                                                    \
    } while (0)

#define TK_STORE(c, r)                                                                                                \
    do {                                                                                                              \
        if (accumulate) *(c) += (r); else *(c) = (r);                                                                 \
    } while (0)

// Tiles of 4 rows of A by 2 rows of B (8 accumulators, each load used 2 or 4 times); the two B rows stay in L1 while
// every row of A passes over them. The first tile of each pair prefetches the B rows 4 further on (a few percent on
// the 262k-row head; prefetch instructions never fault, so reading past the end is harmless).
#define TK_GEMM_NT_BODY                                                                                               \
    size_t j = 0;                                                                                                     \
    for (; j + 2 <= n; j += 2) {                                                                                      \
        const float *b0 = B + j * ldb, *b1 = b0 + ldb;                                                                \
        size_t i = 0;                                                                                                 \
        for (; i + 4 <= m; i += 4) {                                                                                  \
            const float *a0 = A + i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;                            \
            tk_v16 s00 = {0}, s10 = {0}, s20 = {0}, s30 = {0}, s01 = {0}, s11 = {0}, s21 = {0}, s31 = {0};            \
            size_t p = 0;                                                                                             \
            for (; p + 16 <= k; p += 16) {                                                                            \
                tk_v16 x0 = *(const tk_v16 *)(b0 + p), x1 = *(const tk_v16 *)(b1 + p);                                \
                if (i == 0) {                                                                                         \
                    __builtin_prefetch(b0 + 4 * ldb + p);                                                             \
                    __builtin_prefetch(b1 + 4 * ldb + p);                                                             \
                }                                                                                                     \
                tk_v16 y = *(const tk_v16 *)(a0 + p);                                                                 \
                s00 += y * x0; s01 += y * x1;                                                                         \
                y = *(const tk_v16 *)(a1 + p);                                                                        \
                s10 += y * x0; s11 += y * x1;                                                                         \
                y = *(const tk_v16 *)(a2 + p);                                                                        \
                s20 += y * x0; s21 += y * x1;                                                                         \
                y = *(const tk_v16 *)(a3 + p);                                                                        \
                s30 += y * x0; s31 += y * x1;                                                                         \
            }                                                                                                         \
            float r[8];                                                                                               \
            TK_HSUM16(s00, r[0]); TK_HSUM16(s10, r[1]); TK_HSUM16(s20, r[2]); TK_HSUM16(s30, r[3]);                   \
            TK_HSUM16(s01, r[4]); TK_HSUM16(s11, r[5]); TK_HSUM16(s21, r[6]); TK_HSUM16(s31, r[7]);                   \
            for (; p < k; p++) {                                                                                      \
                r[0] += a0[p] * b0[p]; r[1] += a1[p] * b0[p]; r[2] += a2[p] * b0[p]; r[3] += a3[p] * b0[p];           \
                r[4] += a0[p] * b1[p]; r[5] += a1[p] * b1[p]; r[6] += a2[p] * b1[p]; r[7] += a3[p] * b1[p];           \
            }                                                                                                         \
            for (int q = 0; q < 4; q++) {                                                                             \
                TK_STORE(C + (i + q) * ldc + j, r[q]);                                                                \
                TK_STORE(C + (i + q) * ldc + j + 1, r[4 + q]);                                                        \
            }                                                                                                         \
        }                                                                                                             \
        for (; i < m; i++) {                                                                                          \
            const float *a0 = A + i * lda;                                                                            \
            float r0, r1;                                                                                             \
            TK_DOT1(a0, b0, r0);                                                                                      \
            TK_DOT1(a0, b1, r1);                                                                                      \
            TK_STORE(C + i * ldc + j, r0);                                                                            \
            TK_STORE(C + i * ldc + j + 1, r1);                                                                        \
        }                                                                                                             \
    }                                                                                                                 \
    for (; j < n; j++) {                                                                                              \
        const float *b0 = B + j * ldb;                                                                                \
        for (size_t i = 0; i < m; i++) {                                                                              \
            float r0;                                                                                                 \
            TK_DOT1(A + i * lda, b0, r0);                                                                             \
            TK_STORE(C + i * ldc + j, r0);                                                                            \
        }                                                                                                             \
    }

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))
static void tk_gemm_nt_avx512(const float *A, size_t lda, const float *B, size_t ldb, float *C, size_t ldc, size_t m,
                              size_t n, size_t k, int accumulate) { TK_GEMM_NT_BODY }
__attribute__((target("avx2,fma")))
static void tk_gemm_nt_avx2(const float *A, size_t lda, const float *B, size_t ldb, float *C, size_t ldc, size_t m,
                            size_t n, size_t k, int accumulate) { TK_GEMM_NT_BODY }
#endif
static void tk_gemm_nt_portable(const float *A, size_t lda, const float *B, size_t ldb, float *C, size_t ldc, size_t m,
                                size_t n, size_t k, int accumulate) { TK_GEMM_NT_BODY }

int tk_gemm_nt_best_path(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("fma"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

void tk_gemm_nt_rows_on(int path, const float *A, size_t lda, const float *B, size_t ldb, float *C, size_t ldc,
                        size_t m, size_t n, size_t k, int accumulate) {
#if defined(__x86_64__)
    if (path == 2) { tk_gemm_nt_avx512(A, lda, B, ldb, C, ldc, m, n, k, accumulate); return; }
    if (path == 1) { tk_gemm_nt_avx2(A, lda, B, ldb, C, ldc, m, n, k, accumulate); return; }
#endif
    tk_gemm_nt_portable(A, lda, B, ldb, C, ldc, m, n, k, accumulate);
}

void tk_gemm_nt_rows(const float *A, size_t lda, const float *B, size_t ldb, float *C, size_t ldc, size_t m, size_t n,
                     size_t k, int accumulate) {
    static int path = -1;
    if (path < 0) path = tk_gemm_nt_best_path();
    tk_gemm_nt_rows_on(path, A, lda, B, ldb, C, ldc, m, n, k, accumulate);
}
