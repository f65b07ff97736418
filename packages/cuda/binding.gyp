# Built by scripts/build-native.mjs, which finds nvcc and sets FLASHATTN_CUDA_HOME / FLASHATTN_CUDA_ARCH.
# Every .cu file is compiled by nvcc through the rule below; make runs them in parallel (node-gyp -j).
{
  "variables": {
    "cuda_home%": "<!(node -p \"process.env.FLASHATTN_CUDA_HOME || '/usr/local/cuda'\")",
    "cuda_arch%": "<!(node -p \"process.env.FLASHATTN_CUDA_ARCH || '-gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90a,code=sm_90a'\")",
  },
  "targets": [
    {
      "target_name": "flashattn_cuda",
      "sources": [
        "<!@(node -p \"require('fs').readdirSync('native/addon').filter(f => f.endsWith('.cpp')).map(f => 'native/addon/' + f).join(' ')\")",
        "<!@(node -p \"require('fs').readdirSync('native/kernels').filter(f => f.endsWith('.cu')).map(f => 'native/kernels/' + f).join(' ')\")",
        "<!@(node -p \"require('fs').readdirSync('native/inst').filter(f => f.endsWith('.cu')).map(f => 'native/inst/' + f).join(' ')\")",
        # the training ops, one kernel per file (their headers, native/ops/*.cuh|h, are not rule inputs so that an
        # ops change never recompiles the attention kernels: touch the .cu files after editing them)
        "<!@(node -p \"require('fs').readdirSync('native/ops').filter(f => f.endsWith('.cu')).map(f => 'native/ops/' + f).join(' ')\")",
        # the inference kernels (KV cache, split-KV decode, combine), one kernel per file (kv_params.h is not a rule
        # input either: touch native/inference/*.cu after editing it)
        "<!@(node -p \"require('fs').readdirSync('native/inference').filter(f => f.endsWith('.cu')).map(f => 'native/inference/' + f).join(' ')\")",
      ],
      "include_dirs": ["<(cuda_home)/include"],
      "cflags_cc": ["-std=c++17", "-O2"],
      "cflags_cc!": ["-fno-exceptions"],
      "libraries": ["-L<(cuda_home)/lib64", "-lcudart_static", "-ldl", "-lrt", "-lpthread"],
      "rules": [
        {
          "rule_name": "nvcc",
          "extension": "cu",
          # every header: a change to a kernel template recompiles its instantiations
          "inputs": [
            "<(RULE_INPUT_PATH)",
            "<!@(node -p \"['include', 'kernels'].flatMap(d => require('fs').readdirSync('native/' + d).filter(f => /\\.(cuh|h)$/.test(f)).map(f => 'native/' + d + '/' + f)).join(' ')\")",
          ],
          "outputs": ["<(INTERMEDIATE_DIR)/cu/<(RULE_INPUT_ROOT).o"],
          "action": [
            "<(cuda_home)/bin/nvcc", "-O3", "-std=c++17", "-Xcompiler", "-fPIC", "<@(cuda_arch)",
            "-c", "<(RULE_INPUT_PATH)", "-o", "<(INTERMEDIATE_DIR)/cu/<(RULE_INPUT_ROOT).o",
          ],
          "message": "nvcc <(RULE_INPUT_PATH)",
          "process_outputs_as_sources": 1,
        }
      ],
    }
  ],
}
