#include "loom_dispatch.h"
#include "loom_kernels.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// Int8 similarity blocks for the approximate neighbour index. Each vector is quantised with its own scale
// (max |x| / 127), so a product is (sum of int8 products) * scale_a * scale_b; the sum is exact integer arithmetic,
// hence the same in every variant, block shape and thread count. The left rows are stored as u8 (q + 128), as
// VNNI's vpdpbusd multiplies unsigned by signed bytes; sum((q_a + 128) q_b) - 128 sum(q_b) is the signed sum.

// Written without branches in the loops, so the compiler vectorises them (an AVX-512 copy is chosen at run time).
#define LOOM_I8_QUANTIZE_BODY                                                                                      \
    for (size_t i = 0; i < n; i++) {                                                                               \
        const float *x = v + i * dim;                                                                              \
        float m = 0;                                                                                               \
        for (size_t d = 0; d < dim; d++) {                                                                         \
            float a = __builtin_fabsf(x[d]);                                                                       \
            m = a > m ? a : m;                                                                                     \
        }                                                                                                          \
        float inv = m > 0 ? 127.0f / m : 0;                                                                        \
        int8_t *qi = q + i * dp;                                                                                   \
        uint8_t *ui = u + i * dp;                                                                                  \
        for (size_t d = 0; d < dim; d++) {                                                                         \
            float y = x[d] * inv;                                                                                  \
            y = y < -127.0f ? -127.0f : y > 127.0f ? 127.0f : y;                                                   \
            int t = (int)(y + __builtin_copysignf(0.5f, y));                                                       \
            qi[d] = (int8_t)t;                                                                                     \
            ui[d] = (uint8_t)(t + 128);                                                                            \
        }                                                                                                          \
        for (size_t d = dim; d < dp; d++) {                                                                        \
            qi[d] = 0;                                                                                             \
            ui[d] = 128;                                                                                           \
        }                                                                                                          \
        scale[i] = m / 127.0f;                                                                                     \
    }

static void quantize_baseline(const float *v, size_t n, size_t dim, size_t dp, int8_t *q, uint8_t *u, float *scale) {
    LOOM_I8_QUANTIZE_BODY
}

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512vl"))) static void
quantize_avx512(const float *v, size_t n, size_t dim, size_t dp, int8_t *q, uint8_t *u, float *scale) {
    LOOM_I8_QUANTIZE_BODY
}
__attribute__((target("avx2,fma"))) static void quantize_avx2(const float *v, size_t n, size_t dim, size_t dp,
                                                              int8_t *q, uint8_t *u, float *scale) {
    LOOM_I8_QUANTIZE_BODY
}
#endif

void loom_i8_quantize(const float *v, size_t n, size_t dim, size_t dp, int8_t *q, uint8_t *u, float *scale) {
#if defined(__x86_64__)
    int path = loom_kernel_path();
    if (path >= LOOM_PATH_AVX512) {
        quantize_avx512(v, n, dim, dp, q, u, scale);
        return;
    }
    if (path >= LOOM_PATH_AVX2) {
        quantize_avx2(v, n, dim, dp, q, u, scale);
        return;
    }
#endif
    quantize_baseline(v, n, dim, dp, q, u, scale);
}

size_t loom_i8_packed_size(size_t nb, size_t dp) { return ((nb + 31) / 32) * 32 * dp; }

// Layout: blocks of 32 rows; inside a block, for each group of 4 components, the 32 rows' 4 bytes side by side
// (128 bytes: two 64-byte vectors of 16 rows each). Rows past nb are zero.
void loom_i8_pack(const int8_t *b, size_t nb, size_t dp, int8_t *packed, int32_t *sums) {
    size_t k4n = dp / 4, blocks = (nb + 31) / 32;
    memset(packed, 0, loom_i8_packed_size(nb, dp));
    for (size_t cb = 0; cb < blocks; cb++) {
        for (size_t c = 0; c < 32 && cb * 32 + c < nb; c++) {
            const int8_t *row = b + (cb * 32 + c) * dp;
            for (size_t k4 = 0; k4 < k4n; k4++) memcpy(packed + ((cb * k4n + k4) * 32 + c) * 4, row + k4 * 4, 4);
        }
    }
    for (size_t j = 0; j < nb; j++) {
        int32_t s = 0;
        for (size_t d = 0; d < dp; d++) s += b[j * dp + d];
        sums[j] = s;
    }
}

void loom_i8_products_reference(const uint8_t *a, size_t na, const int8_t *b, size_t nb, size_t dp,
                                const float *ascale, const float *bscale, float *out) {
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++) {
            int32_t s = 0;
            for (size_t d = 0; d < dp; d++) s += ((int32_t)a[i * dp + d] - 128) * (int32_t)b[j * dp + d];
            out[i * nb + j] = (float)s * (ascale[i] * bscale[j]);
        }
}

// Baseline x86-64: the packed layout read by scalar loops (so the packing is checked by the tests everywhere).
static void i8_products_baseline(const uint8_t *a, size_t na, const int8_t *packed, size_t nb, size_t dp,
                                 const int32_t *sums, const float *ascale, const float *bscale, float *out) {
    size_t k4n = dp / 4;
    for (size_t cb = 0; cb * 32 < nb; cb++) {
        const int8_t *pb = packed + cb * k4n * 128;
        size_t width = nb - cb * 32 < 32 ? nb - cb * 32 : 32;
        for (size_t i = 0; i < na; i++) {
            int32_t acc[32] = {0};
            const uint8_t *ar = a + i * dp;
            for (size_t k4 = 0; k4 < k4n; k4++)
                for (size_t c = 0; c < 32; c++)
                    for (size_t t = 0; t < 4; t++)
                        acc[c] += (int32_t)ar[k4 * 4 + t] * (int32_t)pb[(k4 * 32 + c) * 4 + t];
            for (size_t c = 0; c < width; c++) {
                size_t j = cb * 32 + c;
                out[i * nb + j] = (float)(acc[c] - 128 * sums[j]) * (ascale[i] * bscale[j]);
            }
        }
    }
}

#if defined(__x86_64__)
// 8 rows x 32 columns of int32 accumulators (16 registers); per group of 4 components two loads of packed columns,
// 8 broadcasts of the rows' 4 bytes and 16 vpdpbusd.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) static void
i8_products_vnni(const uint8_t *a, size_t na, const int8_t *packed, size_t nb, size_t dp, const int32_t *sums,
                 const float *ascale, const float *bscale, float *out) {
    size_t k4n = dp / 4;
    for (size_t cb = 0; cb * 32 < nb; cb++) {
        const int8_t *pb = packed + cb * k4n * 128;
        size_t c0 = cb * 32, width = nb - c0 < 32 ? nb - c0 : 32;
        __mmask16 m0 = width >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << width) - 1);
        __mmask16 m1 = width <= 16 ? (__mmask16)0 : width >= 32 ? (__mmask16)0xffff : (__mmask16)((1u << (width - 16)) - 1);
        __m512i s0 = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m0, sums + c0), 7);
        __m512i s1 = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m1, sums + c0 + 16), 7);
        __m512 sc0 = _mm512_maskz_loadu_ps(m0, bscale + c0), sc1 = _mm512_maskz_loadu_ps(m1, bscale + c0 + 16);
        for (size_t r0 = 0; r0 < na; r0 += 8) {
            const uint8_t *ar[8];
            for (int r = 0; r < 8; r++) ar[r] = a + (r0 + r < na ? r0 + r : na - 1) * dp;
            __m512i acc[8][2];
            for (int r = 0; r < 8; r++) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
            for (size_t k4 = 0; k4 < k4n; k4++) {
                __m512i b0 = _mm512_loadu_si512((const void *)(pb + k4 * 128));
                __m512i b1 = _mm512_loadu_si512((const void *)(pb + k4 * 128 + 64));
                for (int r = 0; r < 8; r++) {
                    int32_t w;
                    memcpy(&w, ar[r] + k4 * 4, 4);
                    __m512i av = _mm512_set1_epi32(w);
                    acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], av, b0);
                    acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], av, b1);
                }
            }
            for (int r = 0; r < 8 && r0 + (size_t)r < na; r++) {
                __m512 sa = _mm512_set1_ps(ascale[r0 + r]);
                float *o = out + (r0 + r) * nb + c0;
                _mm512_mask_storeu_ps(o, m0, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][0], s0)), _mm512_mul_ps(sa, sc0)));
                if (m1) _mm512_mask_storeu_ps(o + 16, m1, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][1], s1)), _mm512_mul_ps(sa, sc1)));
            }
        }
    }
}

// AVX2: 2 rows x 32 columns of int32 accumulators (8 registers). AVX2 has no u8 x s8 -> s32 dot product, and
// vpmaddubsw (u8 x s8, pairs summed to s16 with saturation) would saturate on (q + 128) x q_b. So the signed rows
// are used: q_a = a - 128 (a XOR 0x80), and |q_a| x (q_b with q_a's sign) is the same product with an unsigned
// left side at most 127 (128 for q_a = -128), whose pair sums stay within 2 x 128 x 127 = 32,512: no saturation.
// vpmaddwd with ones then sums pairs of those to int32. That sum is sum(q_a q_b) itself, which is what the other
// variants get as sum((q_a + 128) q_b) - 128 sum(q_b), so every variant gives the same integers and floats.
// (The quantiser keeps |q_b| <= 127, so negating q_b never overflows.)
__attribute__((target("avx2,fma"))) static void i8_products_avx2(const uint8_t *a, size_t na, const int8_t *packed,
                                                                  size_t nb, size_t dp, const float *ascale,
                                                                  const float *bscale, float *out) {
    size_t k4n = dp / 4;
    const __m256i ones = _mm256_set1_epi16(1);
    for (size_t cb = 0; cb * 32 < nb; cb++) {
        const int8_t *pb = packed + cb * k4n * 128;
        size_t c0 = cb * 32, width = nb - c0 < 32 ? nb - c0 : 32;
        for (size_t r0 = 0; r0 < na; r0 += 2) {
            const uint8_t *ar0 = a + r0 * dp, *ar1 = a + (r0 + 1 < na ? r0 + 1 : r0) * dp;
            __m256i acc0[4], acc1[4];
            for (int g = 0; g < 4; g++) acc0[g] = acc1[g] = _mm256_setzero_si256();
            for (size_t k4 = 0; k4 < k4n; k4++) {
                int32_t w0, w1;
                memcpy(&w0, ar0 + k4 * 4, 4);
                memcpy(&w1, ar1 + k4 * 4, 4);
                __m256i q0 = _mm256_set1_epi32(w0 ^ (int32_t)0x80808080), q1 = _mm256_set1_epi32(w1 ^ (int32_t)0x80808080);
                __m256i m0 = _mm256_abs_epi8(q0), m1 = _mm256_abs_epi8(q1);
                for (int g = 0; g < 4; g++) {
                    __m256i b = _mm256_loadu_si256((const __m256i *)(pb + k4 * 128 + g * 32));
                    acc0[g] = _mm256_add_epi32(acc0[g], _mm256_madd_epi16(_mm256_maddubs_epi16(m0, _mm256_sign_epi8(b, q0)), ones));
                    acc1[g] = _mm256_add_epi32(acc1[g], _mm256_madd_epi16(_mm256_maddubs_epi16(m1, _mm256_sign_epi8(b, q1)), ones));
                }
            }
            for (int r = 0; r < 2 && r0 + (size_t)r < na; r++) {
                int32_t sum[32];
                for (int g = 0; g < 4; g++) _mm256_storeu_si256((__m256i *)(sum + 8 * g), r == 0 ? acc0[g] : acc1[g]);
                float *o = out + (r0 + r) * nb + c0;
                float sa = ascale[r0 + r];
                for (size_t c = 0; c < width; c++) o[c] = (float)sum[c] * (sa * bscale[c0 + c]);
            }
        }
    }
}

#endif

const char *loom_i8_variant(void) {
#if defined(__x86_64__)
    if (loom_kernel_path() >= LOOM_PATH_VNNI) return "avx512-vnni";
    if (loom_kernel_path() >= LOOM_PATH_AVX2) return "avx2";
#endif
    return "baseline x86-64";
}

void loom_i8_products(const uint8_t *a, size_t na, const int8_t *packed, size_t nb, size_t dp, const int32_t *sums,
                      const float *ascale, const float *bscale, float *out, int portable) {
#if defined(__x86_64__)
    if (!portable && loom_kernel_path() >= LOOM_PATH_VNNI) {
        i8_products_vnni(a, na, packed, nb, dp, sums, ascale, bscale, out);
        return;
    }
    if (!portable && loom_kernel_path() >= LOOM_PATH_AVX2) {
        i8_products_avx2(a, na, packed, nb, dp, ascale, bscale, out);
        return;
    }
#endif
    i8_products_baseline(a, na, packed, nb, dp, sums, ascale, bscale, out);
}
