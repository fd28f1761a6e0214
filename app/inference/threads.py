"""The service's one thread policy: the model thread gets ``intra_op_threads``; decode threads get one each.

Each thread that calls torch has its own OpenMP team, sized by that thread's own setting; a thread that never
calls ``torch.set_num_threads`` takes the value of whichever thread called it last. So every thread that runs
torch here sets its own count when it starts: the model thread ``CHEXNET_INTRA_OP_THREADS`` (the compiled
backend gets the same number for its own pool), the decode/preprocess threads 1. Decoding is per request and
already parallel across requests; a team of threads inside each would oversubscribe the cores the forward needs.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import torch

DECODE_TORCH_THREADS = 1
CPU_DECODE_WORKERS = 4


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_decode_workers(device: str, upload_backlog: int) -> int:
    """Decode pool size when unset: 4 on the CPU; on CUDA the usable cores, at most ``upload_backlog``.

    On the CPU the forward pass is the bottleneck and needs the cores; on CUDA the GPU outruns decoding (a
    1024 px PNG takes about 10 ms of one core, a batch of them a few ms of the GPU), so decoding gets the cores.
    More workers than the upload backlog could never all be busy: only that many uploads are admitted at once.
    """
    on_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    return min(available_cores(), upload_backlog) if on_cuda else CPU_DECODE_WORKERS


def model_executor(intra_op_threads: int) -> ThreadPoolExecutor:
    """The one model thread, with ``intra_op_threads`` torch threads of its own."""
    return ThreadPoolExecutor(
        max_workers=1,
        thread_name_prefix="chexnet-model",
        initializer=torch.set_num_threads,
        initargs=(intra_op_threads,),
    )


def decode_executor(workers: int) -> ThreadPoolExecutor:
    """Threads for decode + preprocess, each with one torch thread (its resize runs on that thread alone)."""
    return ThreadPoolExecutor(
        max_workers=workers,
        thread_name_prefix="chexnet-decode",
        initializer=torch.set_num_threads,
        initargs=(DECODE_TORCH_THREADS,),
    )
