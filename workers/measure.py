"""Cost measurements of a network: parameters, FLOPs and inference latency.

All three leave the module as they found it: its train/eval mode (per submodule) is
restored and no parameter or buffer changes.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from naslab.core.errors import ConfigError
from naslab.core.validation import check_int

__all__ = ["count_flops", "count_params", "measure_latency_ms"]


def count_params(module: nn.Module) -> int:
    """Number of trainable parameters (those with ``requires_grad``), shared ones once."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode, restoring each submodule's own mode afterwards."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


def _on_module_device(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    for t in module.parameters():
        return x.to(t.device)
    for t in module.buffers():
        return x.to(t.device)
    return x


def _check_input(example_input: torch.Tensor) -> None:
    if not isinstance(example_input, torch.Tensor) or example_input.dim() < 1:
        raise ConfigError(
            "example_input must be a tensor with a leading batch dimension, got "
            + (
                f"shape {tuple(example_input.shape)}"
                if isinstance(example_input, torch.Tensor)
                else type(example_input).__name__
            )
        )
    if len(example_input) == 0:
        raise ConfigError("example_input must hold at least one sample")


def count_flops(module: nn.Module, example_input: torch.Tensor) -> int:
    """Floating-point operations of one forward pass of *one* sample.

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode` in eval mode on the
    first sample of ``example_input`` (a batch, with its batch dimension). As torch
    counts them: a multiply-add is two FLOPs; only the operations torch has formulas
    for are counted (matrix products, convolutions, attention), so biases,
    activations, pooling and normalisation add nothing. ``nn.Linear(10, 5)`` is
    ``2 * 10 * 5 = 100``.
    """
    _check_input(example_input)
    x = _on_module_device(module, example_input[:1])
    counter = FlopCounterMode(display=False)
    with _eval_mode(module), torch.no_grad(), counter:
        module(x)
    return int(counter.get_total_flops())


def _sync(x: torch.Tensor) -> None:
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)


def measure_latency_ms(
    module: nn.Module,
    example_input: torch.Tensor,
    repeats: int = 20,
    warmup: int = 3,
) -> float:
    """Median wall time, in milliseconds, of one forward pass of ``example_input``.

    ``example_input`` is a whole batch (the latency is of the batch, not per sample).
    The module runs in eval mode under ``torch.inference_mode``; ``warmup`` untimed
    passes come first. On CUDA, the device is synchronised around each pass. The
    number of threads is left as it is, so the figure depends on the machine and its
    load.
    """
    _check_input(example_input)
    repeats = check_int("repeats", repeats, minimum=1)
    warmup = check_int("warmup", warmup, minimum=0)
    x = _on_module_device(module, example_input)
    times: list[float] = []
    with _eval_mode(module), torch.inference_mode():
        for _ in range(warmup):
            module(x)
        _sync(x)
        for _ in range(repeats):
            start = time.perf_counter()
            module(x)
            _sync(x)
            times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)
