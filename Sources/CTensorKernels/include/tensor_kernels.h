#ifndef LOOM_TENSOR_KERNELS_H
#define LOOM_TENSOR_KERNELS_H
// The elementwise and row-wise kernels of the Llama model, each forward beside its backward (the llm.c layout).
// All tensors are contiguous row-major float32; N is a number of rows (tokens), C a row length. Matrix products
// are not here: they go through OpenBLAS. Every function works on a range of rows so callers can split work
// across threads; none allocates. Backward functions ACCUMULATE (+=) into input gradients unless said otherwise,
// so residual branches add up without extra copies.
#include <stddef.h>
#include <stdint.h>

/// out[n] = inp[n] / sqrt(mean(inp[n]^2) + eps) * weight; rstd[n] = that 1/sqrt.
void tk_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, size_t N, size_t C, float eps);
/// dinp += d/dinp; dweight += d/dweight (the caller serialises dweight across threads or gives each its own).
void tk_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                         const float *rstd, size_t N, size_t C);

/// Rotary embedding in place, half-split layout (transformers' rotate_half): for each of `heads` vectors of `hd`
/// floats in a row, x[i], x[i+hd/2] are rotated by the angle of (pos[n], i). cos/sin tables are [maxPos][hd/2].
void tk_rope_forward(float *x, const int32_t *pos, const float *cosTable, const float *sinTable, size_t N,
                     size_t heads, size_t hd);
/// The transpose rotation (gradient of tk_rope_forward), in place.
void tk_rope_backward(float *dx, const int32_t *pos, const float *cosTable, const float *sinTable, size_t N,
                      size_t heads, size_t hd);

/// out = silu(gate) * up over n elements.
void tk_swiglu_forward(float *out, const float *gate, const float *up, size_t n);
/// dgate, dup = gradients (written, not accumulated).
void tk_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n);

/// out = gelu_tanh(gate) * up over n elements (Gemma's MLP; gelu_tanh is PyTorch's tanh approximation).
void tk_geglu_forward(float *out, const float *gate, const float *up, size_t n);
/// dgate, dup = gradients (written, not accumulated).
void tk_geglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n);

/// Causal softmax of one attention block in place: rows t of the T x T scores s; a row attends to keys
/// segStart[t]..t (packed sequences: a document's tokens see only that document). Entries outside are set to 0.
/// `scale` multiplies the scores first.
void tk_attention_softmax_forward(float *s, const int32_t *segStart, size_t T, float scale);
/// ds = p * (dp - rowsum(p * dp)) * scale, written over dp (ds may alias dp).
void tk_attention_softmax_backward(float *dp, const float *p, const int32_t *segStart, size_t T, float scale);

/// Cross-entropy of rows of logits against targets (a target < 0 is ignored). Returns the sum of the losses of
/// the rows; replaces each row by its gradient times `scale` (softmax - onehot), and by zeros where ignored.
double tk_cross_entropy_forward_backward(float *logits, const int32_t *targets, size_t N, size_t V, float scale);
/// Per-row weighted gradient of -log p(target): replaces each row by weights[n] * (softmax - onehot(target)), and
/// by zeros where the target is < 0. Returns sum over rows of weights[n] * -log p(target) (objectives such as DPO
/// and ORPO weight each sequence's tokens by a coefficient of the sequence's log-probability).
double tk_cross_entropy_weighted(float *logits, const int32_t *targets, const float *weights, size_t N, size_t V);
/// Log-softmax probability of each row's target (0 where the target is < 0); logits are left unchanged.
void tk_target_logprobs(float *out, const float *logits, const int32_t *targets, size_t N, size_t V);
/// As tk_target_logprobs, and greedy[n] = 1 where the target is the row's argmax (the first index of the maximum, as
/// torch.argmax), else 0 (targets < 0: out 0, greedy 1).
void tk_target_logprobs_greedy(float *out, uint8_t *greedy, const float *logits, const int32_t *targets, size_t N, size_t V);

/// x[r][c] += bias[c] over rows of cols.
void tk_add_bias(float *x, const float *bias, size_t rows, size_t cols);
/// x += y over n floats.
void tk_add(float *x, const float *y, size_t n);
/// Logit soft-capping in place, x = cap * tanh(x / cap); the capped values are also written to `kept`.
void tk_softcap_forward(float *x, float *kept, size_t n, float cap);
/// dx *= 1 - (kept / cap)^2, the derivative of the capping at the kept (capped) values.
void tk_softcap_backward(float *dx, const float *kept, size_t n, float cap);

/// One AdamW step (torch semantics, decoupled decay applied first) over n parameters.
void tk_adamw(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1, float beta2,
              float eps, float weightDecay, float bias1, float bias2);

/// Sum of squares (in double) of n floats.
double tk_sum_squares(const float *x, size_t n);
/// x *= s.
void tk_scale(float *x, size_t n, float s);
/// C[m x n] = A[m x k] · B[n x k]ᵀ, or C += it when accumulate: for a few rows of A (batched decoding), B streamed
/// once without packing. Leading dimensions in floats.
void tk_gemm_nt_rows(const float *A, size_t lda, const float *B, size_t ldb, float *C, size_t ldc, size_t m, size_t n,
                     size_t k, int accumulate);
/// The best path of tk_gemm_nt_rows on this CPU (2 AVX-512, 1 AVX2, 0 portable), and the product on a given path
/// (at most the best one): for tests of every path.
int tk_gemm_nt_best_path(void);
void tk_gemm_nt_rows_on(int path, const float *A, size_t lda, const float *B, size_t ldb, float *C, size_t ldc,
                        size_t m, size_t n, size_t k, int accumulate);

#endif
