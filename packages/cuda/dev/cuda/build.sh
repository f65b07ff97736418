#!/bin/bash
# Build the dev/cuda harnesses (not part of the addon build): bash dev/cuda/build.sh [out-dir]
# (bwd_dkdv_variants: the attention backward variants; rowops_check: the LayerNorm / GELU / residual / column-sum ops)
# FLASHATTN_CUDA_ARCH overrides the -gencode flags (default sm_80 and sm_90a, as the addon).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/build}
mkdir -p "$out"
arch=${FLASHATTN_CUDA_ARCH:--gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90a,code=sm_90a}
native=$here/../../native
# shellcheck disable=SC2086
nvcc -O3 -std=c++17 $arch -o "$out/bwd_dkdv_variants" "$here/bwd_dkdv_variants.cu" \
  "$native/kernels/flash_bwd_preprocess.cu" "$native/kernels/flash_bwd_dq_convert.cu" "$native/inst/bwd_wgmma_sm90a.cu"
echo "built $out/bwd_dkdv_variants"
ops=$native/ops
# shellcheck disable=SC2086
nvcc -O3 -std=c++17 $arch -o "$out/rowops_check" "$here/rowops_check.cu" "$ops/layernorm_forward.cu" \
  "$ops/layernorm_backward_dinp.cu" "$ops/layernorm_backward_weights.cu" "$ops/sum_partials_into.cu" \
  "$ops/column_sums_partial.cu" "$ops/gelu_forward.cu" "$ops/gelu_backward.cu" "$ops/residual_forward.cu"
echo "built $out/rowops_check"
