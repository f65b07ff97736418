// Dispatch on (dtype, head dim) and the backward's sequence of launches (float32: the FMA kernels, *_f32.cu).
#include "../include/launchers.h"

namespace flash {

#define FLASH_CASE(D, KIND)                                                  \
  case D:                                                                    \
    return dtype == kFloat16 ? run_##KIND##_fp16_d##D(p, stream) : run_##KIND##_bf16_d##D(p, stream);

cudaError_t run_flash_fwd(int dtype, const FwdParams& p, cudaStream_t stream, int f32_fault) {
  if (dtype == kFloat32) return run_flash_fwd_f32(p, f32_fault, stream);
  switch (p.s.D) {
    FLASH_CASE(32, fwd)
    FLASH_CASE(64, fwd)
    FLASH_CASE(96, fwd)
    FLASH_CASE(128, fwd)
    FLASH_CASE(256, fwd)
    default:
      return cudaErrorInvalidValue;
  }
}

static cudaError_t run_dkdv(int dtype, const BwdParams& p, cudaStream_t stream) {
  // D = 64 / 128: wgmma (sm_90a) where the device and the binary have it (H100 bwd +7-12% over the mma.sync
  // kernel, README.md tuning log), else flash_bwd_dkdv_sm80.
  if ((p.s.D == 64 || p.s.D == 128) && wgmma_available())
    return run_bwd_wgmma(dtype, p, stream);
  switch (p.s.D) {
    FLASH_CASE(32, bwd)
    FLASH_CASE(64, bwd)
    FLASH_CASE(96, bwd)
    FLASH_CASE(128, bwd)
    FLASH_CASE(256, bwd)
    default:
      return cudaErrorInvalidValue;
  }
}
#undef FLASH_CASE

// The smallest Br of the backward kernels (64; flash_bwd_dkdv_sm80 takes 128 at D = 64): sizes the
// deterministic-mode semaphores, B * Hq * ceil(Nq / 64), enough for every kernel.
int bwd_block_q(int) { return 64; }

cudaError_t run_flash_bwd(int dtype, const BwdParams& p, cudaStream_t stream, int f32_fault) {
  if (dtype == kFloat32) {
    cudaError_t err = launch_bwd_preprocess_f32(p, stream);
    if (err == cudaSuccess) err = launch_bwd_dkdv_f32(p, f32_fault, stream);
    if (err == cudaSuccess) err = launch_bwd_dq_f32(p, f32_fault, stream);
    return err;
  }
  const AttnShape& s = p.s;
  cudaError_t err = cudaMemsetAsync(p.dq_accum, 0, sizeof(float) * (size_t)s.B * s.Nq * s.Hq * s.D, stream);
  if (err == cudaSuccess && p.dq_semaphore) {
    const size_t tr = (size_t)(s.Nq + bwd_block_q(s.D) - 1) / bwd_block_q(s.D);
    err = cudaMemsetAsync(p.dq_semaphore, 0, sizeof(int) * (size_t)s.B * s.Hq * tr, stream);
  }
  if (err == cudaSuccess) err = launch_bwd_preprocess(dtype, p, stream);
  if (err == cudaSuccess) err = run_dkdv(dtype, p, stream);
  if (err == cudaSuccess) err = launch_bwd_dq_convert(dtype, p, stream);
  if (err == cudaSuccess && p.dk_expanded) err = launch_bwd_gqa_reduce(dtype, p, stream);
  return err;
}

}  // namespace flash
