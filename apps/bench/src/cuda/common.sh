# Sourced by the CUDA device scripts of this folder (device.sh, ops-device.sh, decode-device.sh), from the repo
# root: Node from .carry, the carried bundle .bundle-cuda (device-run.mjs, report.mjs, flashattn_cuda.node) and
# its addon, $OUT (default /tmp/cuda-out), and
#   cuda_work DIR LOGS  a fresh work folder W=DIR (and $OUT); snap tars W into $OUT/LOGS (at most 8 files come
#                       back from $OUT, so the logs travel as one tarball, refreshed after every stage: a run cut
#                       off by the time limit still returns what it did); stamp MSG prints the seconds since
#                       cuda_work, then snaps;
#   find_cublaslt       FLASHATTN_CUBLASLT_PATH (createCudaOps' cuBLASLt) if unset: the loader's libcublasLt,
#                       else the torch venv's site-packages/nvidia/cublas/lib one; left unset when neither exists.
source .carry/setup.sh >/dev/null 2>&1
BUN=$PWD/.bundle-cuda
export FLASHATTN_CUDA_ADDON=$BUN/flashattn_cuda.node
OUT=${OUT:-/tmp/cuda-out}

cuda_work() {
  W=$1
  LOGS=$2
  rm -rf "$W"
  mkdir -p "$W" "$OUT"
  t0=$(date +%s)
}
snap() { tar czf "$OUT/$LOGS" -C "$W" . 2>/dev/null; }
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; snap; }

find_cublaslt() {
  local lt site
  [ -n "${FLASHATTN_CUBLASLT_PATH:-}" ] && return 0
  lt=$(ldconfig -p 2>/dev/null | awk '/libcublasLt\.so/ {print $NF; exit}')
  if [ -z "$lt" ]; then
    site=$(python3 -c "import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))" 2>/dev/null)
    lt=$(ls "$site"/nvidia/cublas/lib/libcublasLt.so* 2>/dev/null | head -1)
  fi
  if [ -n "$lt" ]; then export FLASHATTN_CUBLASLT_PATH=$lt; fi
  return 0
}
