// Host-side launchers of the training ops (native/ops/*.cu, one kernel per file), called by addon/ops.cpp.
// Buffers are device pointers to contiguous row-major arrays; dtype ids: 0 = float32, 1 = float16, 2 = bfloat16.
// Every launcher enqueues on `stream` and returns the launch's cudaError_t; n == 0 enqueues nothing.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace ops {

// out (B*T, C) = wte[tokens] (V, C) + wpe[t] (>= T, C); tokens (B, T) int32. A token outside [0, V) gives a NaN row.
cudaError_t embedding_forward(int dtype, void* out, const int32_t* tokens, const void* wte, const void* wpe, int64_t B,
                              int64_t T, int64_t C, int64_t V, cudaStream_t s);
// dwte (V, C) += scatter of dout (B*T, C) by tokens; deterministic: one block per vocabulary row gathers its
// positions in order (embedding_backward_wte.cu).
cudaError_t embedding_backward_wte(int dtype, void* dwte, const void* dout, const int32_t* tokens, int64_t BT,
                                   int64_t C, int64_t V, cudaStream_t s);
// dwpe (>= T, C) += sum over the batch of dout (B, T, C).
cudaError_t embedding_backward_wpe(int dtype, void* dwpe, const void* dout, int64_t B, int64_t T, int64_t C,
                                   cudaStream_t s);
// out (N, C) = (inp - mean) rstd w + b; mean, rstd (N) float32. eps = 1e-5.
cudaError_t layernorm_forward(int dtype, void* out, float* mean, float* rstd, const void* inp, const void* w,
                              const void* b, int64_t N, int64_t C, cudaStream_t s);
// dinp (N, C) += the input gradient of layernorm.
cudaError_t layernorm_backward_dinp(int dtype, void* dinp, const void* dout, const void* inp, const void* w,
                                    const float* mean, const float* rstd, int64_t N, int64_t C, cudaStream_t s);
// Rows of (N, C) are split into `chunks` chunks; dw_part, db_part (chunks, C) float32 = per-chunk column sums of
// dout * xhat and of dout. Finished by sum_partials_into.
cudaError_t layernorm_backward_weights(int dtype, float* dw_part, float* db_part, const void* dout, const void* inp,
                                       const float* mean, const float* rstd, int64_t N, int64_t C, int chunks,
                                       cudaStream_t s);
// part (chunks, N) float32 = per-chunk column sums of x (M, N).
cudaError_t column_sums_partial(int dtype, float* part, const void* x, int64_t M, int64_t N, int chunks,
                                cudaStream_t s);
// dst (N) += sum over chunks of part (chunks, N), in chunk order (deterministic), one rounding to dst's dtype.
cudaError_t sum_partials_into(int dtype, void* dst, const float* part, int64_t N, int chunks, cudaStream_t s);
// How many row chunks the two-pass column sums use for M rows (so that the first pass fills the GPU).
int column_chunks(int64_t M);
// out = GELU_tanh(inp), n elements (may alias).
cudaError_t gelu_forward(int dtype, void* out, const void* inp, int64_t n, cudaStream_t s);
// dinp = GELU_tanh'(inp) dout (may alias dout).
cudaError_t gelu_backward(int dtype, void* dinp, const void* inp, const void* dout, int64_t n, cudaStream_t s);
// out = a + b (may alias a or b).
cudaError_t residual_forward(int dtype, void* out, const void* a, const void* b, int64_t n, cudaStream_t s);
// losses (N) = -log softmax(logits)[target]; dlogits (N, V) = (softmax - onehot) scale when non-null (may alias
// logits). Rows are Vp >= V apart; columns [V, Vp) are not read and dlogits is 0 there. Targets < 0: loss 0, zero
// gradient row; >= V: NaN loss and row.
cudaError_t softmax_cross_entropy(int dtype, int loss_dtype, void* losses, void* dlogits, const void* logits,
                                  const int32_t* targets, int64_t N, int64_t V, int64_t Vp, float scale,
                                  cudaStream_t s);
// result[0] (float64, device) = sum of x (or of x^2), deterministic two-pass reduction; `partials` holds
// reduce_partials_count() doubles.
cudaError_t reduce_sum(int dtype, double* result, double* partials, const void* x, int64_t n, bool squares,
                       cudaStream_t s);
int reduce_partials_count();
// out[0] (float32, device) (+)= sum of x (or of x^2): the same reduction, kept on the device (no host copy).
cudaError_t reduce_sum_to(int dtype, float* out, double* partials, const void* x, int64_t n, bool squares,
                          bool accumulate, cudaStream_t s);
// x *= scale.
cudaError_t scale_inplace(int dtype, void* x, int64_t n, float scale, cudaStream_t s);
// One AdamW step; params, m, v float32; grads in grad_dtype. c1 = 1 - beta1^t, c2 = 1 - beta2^t; one_minus_beta*
// = 1 - beta* rounded once from float64.
cudaError_t adamw(int grad_dtype, float* params, const void* grads, float* m, float* v, int64_t n, float lr,
                  float beta1, float beta2, float one_minus_beta1, float one_minus_beta2, float eps, float weight_decay,
                  float c1, float c2, cudaStream_t s);
// The same step with lr, c1, c2 read from the device (hyper = [lr, c1, c2], float32) and the gradient times the clip
// factor min(1, max_norm / (sqrt(norm_sq[0]) / K + 1e-6)) / K (norm_sq null: factor 1): adamw.cu.
cudaError_t adamw_from(int grad_dtype, float* params, const void* grads, float* m, float* v, int64_t n,
                       const float* hyper, const float* norm_sq, double max_norm, double K, float beta1, float beta2,
                       float one_minus_beta1, float one_minus_beta2, float eps, float weight_decay, cudaStream_t s);
// Row-major out (M, N) (+)= op(A) op(B) [+ bias (N)], one thread per element (matmul_fallback.cu): only for a
// product cuBLASLt has no kernel for. out and bias in out_dtype (a's dtype or float32).
cudaError_t matmul_fallback(int ab_dtype, int out_dtype, void* out, const void* a, const void* b, const void* bias,
                            int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b, bool accumulate,
                            cudaStream_t s);
// out (M, N) = bias (N) in every row (bias and out of one dtype).
cudaError_t bias_broadcast(int dtype, void* out, const void* bias, int64_t M, int64_t N, cudaStream_t s);

}  // namespace ops
