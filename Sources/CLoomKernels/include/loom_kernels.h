#ifndef LOOM_KERNELS_H
#define LOOM_KERNELS_H
// Hot numeric loops that want the machine's vector width. Swift's default target is baseline x86-64 (SSE2);
// these functions are compiled once per instruction set and pick a variant at each call by the path in force
// (loom_dispatch.h: the CPU's best, or the one LOOM_KERNELS asks for).
#include "loom_dispatch.h"
#include <stddef.h>
#include <stdint.h>

/// MinHash update: for every key x in keys[0..<count] and every permutation p in 0..<perms,
/// sig[p] = min(sig[p], (uint32_t)((a[p] * (uint64_t)x + b[p]) >> 32)).
/// The hash family is Dietzfelbinger's multiply-add-shift: 2-independent from 32-bit keys to 32-bit values
/// when a and b are uniform 64-bit numbers.
void loom_minhash_update(const uint32_t *keys, size_t count, const uint64_t *a, const uint64_t *b,
                         uint32_t *sig, size_t perms);

/// Scalar reference for loom_minhash_update, compiled for the baseline only: the tests check one against the other.
void loom_minhash_update_reference(const uint32_t *keys, size_t count, const uint64_t *a, const uint64_t *b,
                                   uint32_t *sig, size_t perms);

/// Which variant loom_minhash_update uses now ("avx512" or "baseline x86-64"; no AVX2 variant: see kernels.c).
const char *loom_minhash_variant(void);

/// The number of equal slots of two signatures.
size_t loom_signature_matches(const uint32_t *x, const uint32_t *y, size_t perms);

/// out[i * nb + j] = dot(a[i], b[j]) for rows of `dim` floats: a block of a similarity matrix.
void loom_dot_block(const float *a, size_t na, const float *b, size_t nb, size_t dim, float *out);

/// dot(a, b) over dim floats, vectorised (sums in another order than the reference's).
float loom_dot(const float *a, const float *b, size_t dim);

/// Scalar reference for loom_dot_block (the tests compare them).
void loom_dot_block_reference(const float *a, size_t na, const float *b, size_t nb, size_t dim, float *out);

/// The neighbour searches' top-k offers: every entry of the similarity block (nrows x width, row-major) is offered
/// to document rows[r]'s top k and, when `symmetric`, to document cols[j]'s (an entry with rows[r] == cols[j] is
/// skipped). Document q's top k is sims/ids[q * k ..< q * k + counts[q]], sorted by similarity descending, then id
/// ascending; an id kept once at its best similarity. `column_thresholds` is scratch of `width` floats.
/// `distinct` promises that no row's document is offered an id already in its list, nor one id twice (a block
/// of distinct columns offered to rows whose lists start empty): the row offers then skip the search for the id.
/// `portable` forces the baseline x86-64 loop (for the tests; 0 picks the AVX2 or AVX-512 loop by the path in force).
/// The Swift TopK.offerBlockReference is the reference the tests compare this with.
void loom_topk_offer_block(const float *block, size_t nrows, size_t width, const int32_t *rows, const int32_t *cols,
                           int symmetric, float *column_thresholds, float *sims, int32_t *ids, int32_t *counts,
                           size_t k, int distinct, int portable);
/// Offers every entry of another top k (o*, same n and k) to this one, as loom_topk_offer_block's inserts do.
void loom_topk_merge(float *sims, int32_t *ids, int32_t *counts, const float *osims, const int32_t *oids,
                     const int32_t *ocounts, size_t n, size_t k);

/// Int8 similarity blocks (the approximate neighbour index; int8.c). Row i of v (dim floats) becomes q (int8, dp
/// bytes, dp = dim rounded up to 4, zero padded), u (the same + 128, as u8) and scale[i] = max|x| / 127.
void loom_i8_quantize(const float *v, size_t n, size_t dim, size_t dp, int8_t *q, uint8_t *u, float *scale);
/// Bytes loom_i8_pack writes for nb rows.
size_t loom_i8_packed_size(size_t nb, size_t dp);
/// Packs nb int8 rows (dp bytes each) for loom_i8_products; sums[j] = the sum of row j's bytes.
void loom_i8_pack(const int8_t *b, size_t nb, size_t dp, int8_t *packed, int32_t *sums);
/// out[i * nb + j] = float(sum_d (a[i][d] - 128) * b[j][d]) * (ascale[i] * bscale[j]), a as u8 rows of dp bytes and
/// b packed. The sum is exact; `portable` forces the baseline loop (tests), else AVX-512 VNNI on the vnni path.
void loom_i8_products(const uint8_t *a, size_t na, const int8_t *packed, size_t nb, size_t dp, const int32_t *sums,
                      const float *ascale, const float *bscale, float *out, int portable);
/// The same from unpacked b, by plain loops (the tests' reference).
void loom_i8_products_reference(const uint8_t *a, size_t na, const int8_t *b, size_t nb, size_t dp,
                                const float *ascale, const float *bscale, float *out);
/// Which variant loom_i8_products uses now ("avx512-vnni" or "baseline x86-64").
const char *loom_i8_variant(void);
#endif
