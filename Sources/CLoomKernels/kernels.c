#include "loom_kernels.h"
#include "loom_dispatch.h"

// The MinHash loop: blocks of permutations keep their running minima in registers while the keys stream past.
// a * x mod 2^64 for a 32-bit x is lo(a) * x + (hi(a) * x << 32): two 32x32->64 multiplies, which every x86-64
// vector unit has, instead of a 64x64 multiply, which only AVX-512 has (and slowly).
// Block sizes were measured on the project VM (2.7 M keys, 128 permutations): AVX-512 with 64 permutations a block
// 26 ns a key (32: 30, 128: 58); baseline x86-64 with 8 a block 148 ns (16: 211). The compiler's AVX2 code for
// this loop was no faster than baseline at any block size; minhash_avx2 below is written by hand.
#define LOOM_MINHASH_BODY(BLOCK)                                                                                  \
    size_t p0 = 0;                                                                                                 \
    for (; p0 + BLOCK <= perms; p0 += BLOCK) {                                                                     \
        uint64_t lo[BLOCK], hi[BLOCK], bb[BLOCK];                                                                  \
        uint32_t m[BLOCK];                                                                                         \
        for (int j = 0; j < BLOCK; j++) {                                                                          \
            lo[j] = a[p0 + j] & 0xffffffffu;                                                                       \
            hi[j] = a[p0 + j] >> 32;                                                                               \
            bb[j] = b[p0 + j];                                                                                     \
            m[j] = sig[p0 + j];                                                                                    \
        }                                                                                                          \
        for (size_t i = 0; i < count; i++) {                                                                       \
            uint64_t x = keys[i];                                                                                  \
            for (int j = 0; j < BLOCK; j++) {                                                                      \
                uint64_t t = lo[j] * x + bb[j] + ((hi[j] * x) << 32);                                              \
                uint32_t v = (uint32_t)(t >> 32);                                                                  \
                m[j] = v < m[j] ? v : m[j];                                                                        \
            }                                                                                                      \
        }                                                                                                          \
        for (int j = 0; j < BLOCK; j++) sig[p0 + j] = m[j];                                                       \
    }                                                                                                              \
    if (p0 < perms) loom_minhash_update_reference(keys, count, a + p0, b + p0, sig + p0, perms - p0);

void loom_minhash_update_reference(const uint32_t *keys, size_t count, const uint64_t *a, const uint64_t *b,
                                   uint32_t *sig, size_t perms) {
    for (size_t i = 0; i < count; i++) {
        for (size_t p = 0; p < perms; p++) {
            uint32_t v = (uint32_t)((a[p] * (uint64_t)keys[i] + b[p]) >> 32);
            if (v < sig[p]) sig[p] = v;
        }
    }
}

static void minhash_baseline(const uint32_t *keys, size_t count, const uint64_t *a, const uint64_t *b,
                             uint32_t *sig, size_t perms) {
    LOOM_MINHASH_BODY(8)
}

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl"))) static void
minhash_avx512(const uint32_t *keys, size_t count, const uint64_t *a, const uint64_t *b, uint32_t *sig,
               size_t perms) {
    LOOM_MINHASH_BODY(64)
}
#endif

#if defined(__x86_64__)
// AVX2: 8 permutations a group, two groups a block held in registers. For 4 permutations at a time, mul_epu32 gives
// the 64-bit lo(a) * x and add_epi64 adds b; the high halves of two such vectors are merged into one vector of 8
// 32-bit lanes with a shift and a blend, which puts the permutations in the lane order 0 4 1 5 2 6 3 7 (so hi(a)
// and the running minima are kept in that order too); mullo_epi32 gives lo32(hi(a) * x), added in 32 bits; then an
// unsigned min. 9 vector operations per key and 8 permutations, where the compiler's own AVX2 code emulated 64-bit
// multiplies and was no faster than scalar code.
#include <immintrin.h>

__attribute__((target("avx2,fma"))) static void minhash_avx2(const uint32_t *keys, size_t count, const uint64_t *a,
                                                              const uint64_t *b, uint32_t *sig, size_t perms) {
    enum { GROUPS = 2, BLOCK = 8 * GROUPS };
    static const int order[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    size_t p0 = 0;
    for (; p0 + BLOCK <= perms; p0 += BLOCK) {
        __m256i lo0[GROUPS], lo1[GROUPS], b0[GROUPS], b1[GROUPS], hi[GROUPS], m[GROUPS];
        for (int g = 0; g < GROUPS; g++) {
            const uint64_t *ag = a + p0 + 8 * g, *bg = b + p0 + 8 * g;
            lo0[g] = _mm256_set_epi64x((long long)(ag[3] & 0xffffffffu), (long long)(ag[2] & 0xffffffffu),
                                       (long long)(ag[1] & 0xffffffffu), (long long)(ag[0] & 0xffffffffu));
            lo1[g] = _mm256_set_epi64x((long long)(ag[7] & 0xffffffffu), (long long)(ag[6] & 0xffffffffu),
                                       (long long)(ag[5] & 0xffffffffu), (long long)(ag[4] & 0xffffffffu));
            b0[g] = _mm256_set_epi64x((long long)bg[3], (long long)bg[2], (long long)bg[1], (long long)bg[0]);
            b1[g] = _mm256_set_epi64x((long long)bg[7], (long long)bg[6], (long long)bg[5], (long long)bg[4]);
            int32_t h[8], mm[8];
            for (int j = 0; j < 8; j++) {
                h[j] = (int32_t)(uint32_t)(ag[order[j]] >> 32);
                mm[j] = (int32_t)sig[p0 + 8 * g + order[j]];
            }
            hi[g] = _mm256_loadu_si256((const __m256i *)h);
            m[g] = _mm256_loadu_si256((const __m256i *)mm);
        }
        for (size_t i = 0; i < count; i++) {
            __m256i x = _mm256_set1_epi32((int)keys[i]);
            for (int g = 0; g < GROUPS; g++) {
                __m256i t0 = _mm256_add_epi64(_mm256_mul_epu32(lo0[g], x), b0[g]);
                __m256i t1 = _mm256_add_epi64(_mm256_mul_epu32(lo1[g], x), b1[g]);
                __m256i high = _mm256_blend_epi32(_mm256_srli_epi64(t0, 32), t1, 0xAA);
                __m256i v = _mm256_add_epi32(high, _mm256_mullo_epi32(hi[g], x));
                m[g] = _mm256_min_epu32(m[g], v);
            }
        }
        for (int g = 0; g < GROUPS; g++) {
            uint32_t mm[8];
            _mm256_storeu_si256((__m256i *)mm, m[g]);
            for (int j = 0; j < 8; j++) sig[p0 + 8 * g + order[j]] = mm[j];
        }
    }
    if (p0 < perms) minhash_baseline(keys, count, a + p0, b + p0, sig + p0, perms - p0);
}
#endif

typedef void (*minhash_fn)(const uint32_t *, size_t, const uint64_t *, const uint64_t *, uint32_t *, size_t);

// The variants by path (loom_dispatch.h): the widest one not above the path in force.
static minhash_fn choose_minhash(void) {
#if defined(__x86_64__)
    if (loom_kernel_path() >= LOOM_PATH_AVX512) return minhash_avx512;
    if (loom_kernel_path() >= LOOM_PATH_AVX2) return minhash_avx2;
#endif
    return minhash_baseline;
}

void loom_minhash_update(const uint32_t *keys, size_t count, const uint64_t *a, const uint64_t *b,
                         uint32_t *sig, size_t perms) {
    choose_minhash()(keys, count, a, b, sig, perms);
}

const char *loom_minhash_variant(void) {
    minhash_fn f = choose_minhash();
#if defined(__x86_64__)
    if (f == minhash_avx2) return "avx2";
#endif
    return f == minhash_baseline ? "baseline x86-64" : "avx512";
}

size_t loom_signature_matches(const uint32_t *x, const uint32_t *y, size_t perms) {
    size_t n = 0;
    for (size_t p = 0; p < perms; p++) n += x[p] == y[p];
    return n;
}

// Dot products of row blocks: four rows of `a` against one row of `b` at a time, so each load of b feeds four
// accumulators. Compiled for AVX-512 and for baseline x86-64; chosen at run time like the MinHash loop.
#define LOOM_DOT_BODY                                                                                              \
    _Pragma("clang fp reassociate(on)")                                                                            \
    size_t i = 0;                                                                                                  \
    for (; i + 4 <= na; i += 4) {                                                                                  \
        const float *a0 = a + i * dim, *a1 = a0 + dim, *a2 = a1 + dim, *a3 = a2 + dim;                           \
        for (size_t j = 0; j < nb; j++) {                                                                          \
            const float *bj = b + j * dim;                                                                         \
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                                                  \
            for (size_t k = 0; k < dim; k++) {                                                                     \
                float x = bj[k];                                                                                   \
                s0 += a0[k] * x;                                                                                   \
                s1 += a1[k] * x;                                                                                   \
                s2 += a2[k] * x;                                                                                   \
                s3 += a3[k] * x;                                                                                   \
            }                                                                                                      \
            out[i * nb + j] = s0;                                                                                  \
            out[(i + 1) * nb + j] = s1;                                                                            \
            out[(i + 2) * nb + j] = s2;                                                                            \
            out[(i + 3) * nb + j] = s3;                                                                            \
        }                                                                                                          \
    }                                                                                                              \
    if (i < na) loom_dot_block_reference(a + i * dim, na - i, b, nb, dim, out + i * nb);

void loom_dot_block_reference(const float *a, size_t na, const float *b, size_t nb, size_t dim, float *out) {
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++) {
            float s = 0;
            for (size_t k = 0; k < dim; k++) s += a[i * dim + k] * b[j * dim + k];
            out[i * nb + j] = s;
        }
}

// Reassociating the sums (the pragma in the body) lets the compiler vectorise them (results differ from the reference in the last bits).
static void dot_baseline(const float *a, size_t na, const float *b, size_t nb, size_t dim, float *out) {
    LOOM_DOT_BODY
}

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl"))) static void
dot_avx512(const float *a, size_t na, const float *b, size_t nb, size_t dim, float *out) {
    LOOM_DOT_BODY
}
__attribute__((target("avx2,fma"))) static void dot_avx2(const float *a, size_t na, const float *b, size_t nb,
                                                         size_t dim, float *out) {
    LOOM_DOT_BODY
}
#endif

// One dot product, sums reassociated into vector lanes (the IVF search's float32 re-scoring of candidates).
#define LOOM_DOT1_BODY                                                                                             \
    _Pragma("clang fp reassociate(on)")                                                                            \
    float s = 0;                                                                                                   \
    for (size_t k = 0; k < dim; k++) s += a[k] * b[k];                                                             \
    return s;

static float dot1_baseline(const float *a, const float *b, size_t dim) { LOOM_DOT1_BODY }

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl"))) static float dot1_avx512(const float *a, const float *b,
                                                                                        size_t dim) {
    LOOM_DOT1_BODY
}
__attribute__((target("avx2,fma"))) static float dot1_avx2(const float *a, const float *b, size_t dim) {
    LOOM_DOT1_BODY
}
#endif

float loom_dot(const float *a, const float *b, size_t dim) {
#if defined(__x86_64__)
    int path = loom_kernel_path();
    if (path >= LOOM_PATH_AVX512) return dot1_avx512(a, b, dim);
    if (path >= LOOM_PATH_AVX2) return dot1_avx2(a, b, dim);
#endif
    return dot1_baseline(a, b, dim);
}

void loom_dot_block(const float *a, size_t na, const float *b, size_t nb, size_t dim, float *out) {
#if defined(__x86_64__)
    int path = loom_kernel_path();
    if (path >= LOOM_PATH_AVX512) {
        dot_avx512(a, na, b, nb, dim, out);
        return;
    }
    if (path >= LOOM_PATH_AVX2) {
        dot_avx2(a, na, b, nb, dim, out);
        return;
    }
#endif
    dot_baseline(a, na, b, nb, dim, out);
}

// The neighbour searches' top-k offers (TopK.offerBlock in Swift, which stays as the reference). Per document q,
// sims[q * k ..< q * k + counts[q]] and ids[...] hold its best entries, sorted by similarity (descending), then id
// (ascending); an id appears once, at its best similarity.
static inline int topk_before(float s, int32_t i, float t, int32_t j) { return s > t || (s == t && i < j); }

static inline float topk_threshold(const float *sims, const int32_t *counts, size_t k, size_t q) {
    return (size_t)counts[q] == k ? sims[q * k + k - 1] : -__builtin_inff();
}

// `distinct`: the caller knows id is not in q's list, so the search for it is skipped.
static inline void topk_insert(float *sims, int32_t *ids, int32_t *counts, size_t k, size_t q, int32_t id, float s,
                               int distinct) {
    float *S = sims + q * k;
    int32_t *I = ids + q * k;
    size_t have = (size_t)counts[q];
    if (have == k && !topk_before(s, id, S[k - 1], I[k - 1])) return;
    for (size_t r = 0; r < (distinct ? 0 : have); r++) {
        if (I[r] != id) continue;
        if (s <= S[r]) return;
        for (size_t x = r; x + 1 < have; x++) {
            S[x] = S[x + 1];
            I[x] = I[x + 1];
        }
        have--;
        counts[q]--;
        break;
    }
    if (have == k)
        have--;
    else
        counts[q]++;
    size_t p = have;
    while (p > 0 && topk_before(s, id, S[p - 1], I[p - 1])) {
        S[p] = S[p - 1];
        I[p] = I[p - 1];
        p--;
    }
    S[p] = s;
    I[p] = id;
}

static inline void topk_offer(float *sims, int32_t *ids, int32_t *counts, size_t k, size_t q, int32_t id, float s) {
    topk_insert(sims, ids, counts, k, q, id, s, 0);
}

// One entry that passed a threshold: offered to its row's document and (symmetric) its column's.
#define LOOM_TOPK_ENTRY(J)                                                                                         \
    {                                                                                                              \
        size_t jj = (J);                                                                                           \
        float s = row[jj];                                                                                         \
        int32_t m = cols[jj];                                                                                      \
        if (m != q) {                                                                                              \
            if (s >= t) {                                                                                          \
                topk_insert(sims, ids, counts, k, (size_t)q, m, s, distinct);                                      \
                t = topk_threshold(sims, counts, k, (size_t)q);                                                    \
            }                                                                                                      \
            if (s >= ct[jj]) {                                                                                     \
                topk_offer(sims, ids, counts, k, (size_t)m, q, s);                                                 \
                ct[jj] = topk_threshold(sims, counts, k, (size_t)m);                                               \
            }                                                                                                      \
        }                                                                                                          \
    }

static void topk_block_baseline(const float *block, size_t nrows, size_t width, const int32_t *rows,
                                const int32_t *cols, float *ct, float *sims, int32_t *ids, int32_t *counts,
                                size_t k, int distinct) {
    for (size_t r = 0; r < nrows; r++) {
        int32_t q = rows[r];
        const float *row = block + r * width;
        float t = topk_threshold(sims, counts, k, (size_t)q);
        for (size_t j = 0; j < width; j++) {
            if (!(row[j] >= t || row[j] >= ct[j])) continue;
            LOOM_TOPK_ENTRY(j)
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>
// Sixteen (AVX-512) or eight (AVX2) entries at a time: one compare against the row's threshold and one against the
// columns' thresholds; the (rare) entries that pass go through the scalar offer.
// One row's entries WIDTH at a time: HITS(j) is a bit mask of the entries j..j+WIDTH-1 that pass either threshold
// (the row's t or their column's ct); those go through the scalar offer, the rest of the row (below WIDTH) too.
#define LOOM_TOPK_ROWS(WIDTH, HITS)                                                                                \
    for (size_t r = 0; r < nrows; r++) {                                                                           \
        int32_t q = rows[r];                                                                                       \
        const float *row = block + r * width;                                                                      \
        float t = topk_threshold(sims, counts, k, (size_t)q);                                                      \
        size_t j = 0;                                                                                              \
        for (; j + (WIDTH) <= width; j += (WIDTH)) {                                                               \
            unsigned hit = (HITS);                                                                                 \
            while (hit) {                                                                                          \
                unsigned b = (unsigned)__builtin_ctz(hit);                                                         \
                hit &= hit - 1;                                                                                    \
                if (!(row[j + b] >= t || row[j + b] >= ct[j + b])) continue;                                       \
                LOOM_TOPK_ENTRY(j + b)                                                                             \
            }                                                                                                      \
        }                                                                                                          \
        for (; j < width; j++) {                                                                                   \
            if (!(row[j] >= t || row[j] >= ct[j])) continue;                                                       \
            LOOM_TOPK_ENTRY(j)                                                                                     \
        }                                                                                                          \
    }

__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl"))) static void
topk_block_avx512(const float *block, size_t nrows, size_t width, const int32_t *rows, const int32_t *cols,
                  float *ct, float *sims, int32_t *ids, int32_t *counts, size_t k, int distinct) {
    LOOM_TOPK_ROWS(16, (unsigned)(_mm512_cmp_ps_mask(_mm512_loadu_ps(row + j), _mm512_set1_ps(t), _CMP_GE_OQ) |
                                  _mm512_cmp_ps_mask(_mm512_loadu_ps(row + j), _mm512_loadu_ps(ct + j), _CMP_GE_OQ)))
}

__attribute__((target("avx2,fma"))) static void topk_block_avx2(const float *block, size_t nrows, size_t width,
                                                                const int32_t *rows, const int32_t *cols, float *ct,
                                                                float *sims, int32_t *ids, int32_t *counts, size_t k,
                                                                int distinct) {
    LOOM_TOPK_ROWS(8, (unsigned)_mm256_movemask_ps(
                          _mm256_or_ps(_mm256_cmp_ps(_mm256_loadu_ps(row + j), _mm256_set1_ps(t), _CMP_GE_OQ),
                                       _mm256_cmp_ps(_mm256_loadu_ps(row + j), _mm256_loadu_ps(ct + j), _CMP_GE_OQ))))
}
#endif

void loom_topk_offer_block(const float *block, size_t nrows, size_t width, const int32_t *rows, const int32_t *cols,
                           int symmetric, float *column_thresholds, float *sims, int32_t *ids, int32_t *counts,
                           size_t k, int distinct, int portable) {
    if (k == 0) return;
    for (size_t j = 0; j < width; j++)
        column_thresholds[j] = symmetric ? topk_threshold(sims, counts, k, (size_t)cols[j]) : __builtin_inff();
#if defined(__x86_64__)
    int path = portable ? LOOM_PATH_PORTABLE : loom_kernel_path();
    if (path >= LOOM_PATH_AVX512) {
        topk_block_avx512(block, nrows, width, rows, cols, column_thresholds, sims, ids, counts, k, distinct);
        return;
    }
    if (path >= LOOM_PATH_AVX2) {
        topk_block_avx2(block, nrows, width, rows, cols, column_thresholds, sims, ids, counts, k, distinct);
        return;
    }
#endif
    topk_block_baseline(block, nrows, width, rows, cols, column_thresholds, sims, ids, counts, k, distinct);
}

void loom_topk_merge(float *sims, int32_t *ids, int32_t *counts, const float *osims, const int32_t *oids,
                     const int32_t *ocounts, size_t n, size_t k) {
    if (k == 0) return;
    for (size_t q = 0; q < n; q++)
        for (size_t r = 0; r < (size_t)ocounts[q]; r++) topk_offer(sims, ids, counts, k, q, oids[q * k + r], osims[q * k + r]);
}
