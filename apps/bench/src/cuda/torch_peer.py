"""What the PyTorch peers of the CUDA benchmarks share (cuda-sdpa-peer.py, cuda/decode-sdpa-peer.py): CUDA-event
timing the way the addon's benchmarks time (median of `iters` calls after `warmup` untimed ones), SDPA's backends
by the names the peers' --impls flags take, and the run's device / library versions for the JSON.
"""
import torch
from torch.nn.attention import SDPBackend

SDPA_BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                 "cudnn": SDPBackend.CUDNN_ATTENTION}


def median_ms(fn, iters, warmup=3):
    """Median milliseconds of one fn() call: CUDA events around each call, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def sdpa_backends(impls):
    """{name: SDPBackend} for the comma-separated names in `impls` (flash, efficient, cudnn), in table order."""
    wanted = impls.split(",")
    return {k: v for k, v in SDPA_BACKENDS.items() if k in wanted}


def torch_info(**extra):
    """The GPU's name, torch / CUDA / cuDNN versions, and `extra`."""
    return dict(device=torch.cuda.get_device_name(), torch=torch.__version__, cuda=torch.version.cuda,
                cudnn=torch.backends.cudnn.version(), **extra)
