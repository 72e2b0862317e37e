#ifndef LOOM_BERT_H
#define LOOM_BERT_H
// The element-wise and attention kernels of a BERT encoder (the MiniLM embedder in LoomPack); the matrix products
// go to OpenBLAS. Each has AVX2 and AVX-512 variants chosen at run time (loom_dispatch.h).
#include <stddef.h>

/// x[r][c] = gelu(x[r][c] + bias[c]) with the exact GELU, 0.5 x (1 + erf(x / sqrt 2)).
void loom_bias_gelu(float *x, const float *bias, size_t rows, size_t cols);

/// x[r][c] += bias[c].
void loom_bias_add(float *x, const float *bias, size_t rows, size_t cols);

/// out[r] = LayerNorm(x[r] + bias + res[r]) * gamma + beta over `cols`; bias and res may be NULL; out may be res
/// or x (each element is read before it is written).
void loom_add_layernorm(float *out, const float *x, const float *bias, const float *res, const float *gamma,
                        const float *beta, size_t rows, size_t cols, float eps);

/// Self-attention of one sequence of `t` tokens without a mask. qkv rows are [q | k | v], each heads x head_dim
/// wide; out rows are heads x head_dim: out_i = softmax(scale q_i . k_j)_j v_j per head. scratch holds
/// t * (head_dim + 1) floats.
void loom_attention(const float *qkv, size_t t, size_t heads, size_t head_dim, float scale, float *out,
                    float *scratch);

/// The erf approximation the GELU kernel uses (Abramowitz and Stegun 7.1.26, absolute error below 1.5e-7;
/// PyTorch's vectorised erf uses the same), for tests.
float loom_erf(float x);

/// The exp approximation the softmax uses (relative error about 1e-7), for tests.
float loom_exp(float x);

/// Which variant the kernels use now ("avx512", "avx2" or "baseline x86-64").
const char *loom_bert_variant(void);
#endif
