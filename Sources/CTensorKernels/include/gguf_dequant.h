#ifndef LOOM_GGUF_DEQUANT_H
#define LOOM_GGUF_DEQUANT_H
// Dequantization of ggml's block formats to float32 (the GGUF reader's fast path; LoomTensor's GGUFReference.swift
// holds the plain per-value reference it is tested against). Each function turns `n_blocks` consecutive blocks at
// `src` into n_blocks * block_size floats at `dst`. The arithmetic is gguf-py's (gguf.quants), operation for
// operation in float32 without fused multiply-add, so the results are bit-identical to `gguf.quants.dequantize`.
// The caller checks that src holds n_blocks * type_size bytes; nothing here allocates or reads past that.
#include <stddef.h>
#include <stdint.h>

/// ggml type ids (ggml.h's enum ggml_type) of the formats below.
enum {
    GD_F32 = 0, GD_F16 = 1, GD_Q4_0 = 2, GD_Q4_1 = 3, GD_Q5_0 = 6, GD_Q5_1 = 7, GD_Q8_0 = 8,
    GD_Q2_K = 10, GD_Q3_K = 11, GD_Q4_K = 12, GD_Q5_K = 13, GD_Q6_K = 14, GD_BF16 = 30,
};

/// Dequantizes n_blocks blocks of ggml type `type`. Returns 0, or -1 for a type not listed above.
int gd_dequantize(int type, const uint8_t *src, float *dst, size_t n_blocks);

/// IEEE half to float, exact (subnormals, infinities and NaN payloads kept).
float gd_half_to_float(uint16_t h);

/// Float to IEEE half, round to nearest even (numpy's astype(float16); overflow gives infinity).
uint16_t gd_float_to_half(float f);

/// Quantizes n_blocks blocks of 32 floats to Q8_0 (34 bytes each) exactly as ggml's quantize_row_q8_0_ref and
/// gguf-py's Q8_0.quantize_blocks: d = max|x| / 127, q = round-half-away(x / d).
void gd_quantize_q8_0(const float *src, uint8_t *dst, size_t n_blocks);
#endif
