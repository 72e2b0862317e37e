#ifndef LOOM_KERNELS_H
#define LOOM_KERNELS_H
// Hot numeric loops that want the machine's vector width. Swift's default target is baseline x86-64 (SSE2);
// these functions are compiled once per instruction set (`target_clones`) and the loader picks the best one.
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

/// Which variant loom_minhash_update uses on this CPU ("avx512" or "baseline x86-64").
const char *loom_minhash_variant(void);

/// The number of equal slots of two signatures.
size_t loom_signature_matches(const uint32_t *x, const uint32_t *y, size_t perms);

/// out[i * nb + j] = dot(a[i], b[j]) for rows of `dim` floats: a block of a similarity matrix.
void loom_dot_block(const float *a, size_t na, const float *b, size_t nb, size_t dim, float *out);

/// Scalar reference for loom_dot_block (the tests compare them).
void loom_dot_block_reference(const float *a, size_t na, const float *b, size_t nb, size_t dim, float *out);

/// The neighbour searches' top-k offers: every entry of the similarity block (nrows x width, row-major) is offered
/// to document rows[r]'s top k and, when `symmetric`, to document cols[j]'s (an entry with rows[r] == cols[j] is
/// skipped). Document q's top k is sims/ids[q * k ..< q * k + counts[q]], sorted by similarity descending, then id
/// ascending; an id kept once at its best similarity. `column_thresholds` is scratch of `width` floats.
/// `portable` forces the baseline x86-64 loop (for the tests; 0 picks AVX-512 where the CPU has it).
/// The Swift TopK.offerBlockReference is the reference the tests compare this with.
void loom_topk_offer_block(const float *block, size_t nrows, size_t width, const int32_t *rows, const int32_t *cols,
                           int symmetric, float *column_thresholds, float *sims, int32_t *ids, int32_t *counts,
                           size_t k, int portable);
#endif
