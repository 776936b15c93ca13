"""Zero-cost proxies: scores of an untrained network computed from one minibatch.

A zero-cost proxy looks at a freshly initialised network and one minibatch of the
task's training data (or no data at all) and returns a number that correlates with
the accuracy the network reaches after training. They cost one or two forward and
backward passes, so they can rank thousands of candidates in the time one of them
trains. For every proxy below, **higher means a better predicted network** (for
``params`` and ``flops``, higher means bigger, which in cell spaces such as
NAS-Bench-201 also tends to mean more accurate; they are costs as well).

The proxies (:data:`PROXIES`), as defined in their papers and reference code:

``synflow``
    Synaptic flow (Tanaka et al. 2020), as used for NAS by Abdelfattah et al. 2021
    ("Zero-Cost Proxies for Lightweight NAS", reference code ``foresight``): on a
    copy of the network, every parameter and buffer is replaced by its absolute
    value, the copy is converted to float64, the input is a single sample of ones
    with the task's input shape, ``R`` is the sum of the network's output and the
    score is ``sum |theta * dR/dtheta|`` over the weights of the convolution and
    linear layers. BatchNorm is handled as in the reference's ``synflow`` (its
    ``bn=False`` copy): every BatchNorm layer (a ``nn.BatchNorm1d/2d/3d`` or
    ``nn.SyncBatchNorm`` submodule) is replaced by the identity; other normalisation
    layers are kept. The rest of the copy runs in eval mode (as in Tanaka et al.'s
    code), which only matters for dropout. **Returned on a natural-log scale**:
    ``log(score)``. The raw score spans tens of orders of magnitude and overflows
    float32 for deep networks; the logarithm keeps every ranking unchanged and gives
    numbers that can be used as features. A score of exactly 0 (no convolution or
    linear weight influences the output, e.g. a cell whose edges are all ``none``) is
    reported as ``log(4.9e-324) = -744.44`` (the log of the smallest positive float64)
    and a score that overflows even float64 as ``log(1.8e308) = 709.78``.
``jacob_cov``
    Jacobian covariance (Mellor et al. 2020, "Neural Architecture Search without
    Training", first version; as in ``foresight``): in train mode (BatchNorm uses
    the batch's statistics, as in the reference), ``J[n]`` is the gradient of the sum
    of sample ``n``'s outputs with respect to its input (the reference's
    ``y.backward(ones_like(y))``), flattened; ``C`` is the correlation matrix of the
    rows of ``J`` and the score is ``-sum_i (log(v_i + k) + 1 / (v_i + k))`` over the
    eigenvalues ``v_i`` of ``C``, with ``k = 1e-5``. The eigenvalues are those of the
    symmetric matrix (``eigvalsh``), clipped below at 0 (a correlation matrix is
    positive semi-definite; negative values are rounding errors). The score is at
    most about ``-N`` for ``N`` samples (reached when all eigenvalues are 1).
    When the correlation is undefined (some sample's gradient is constant, e.g. the
    output does not depend on the input) the score is the value of a rank-one
    correlation matrix (eigenvalues ``N, 0, ..., 0``), the worst an ``N``-sample
    batch can get. Note: when a sample has ``D`` input values, ``C`` has rank at
    most ``D - 1``; with ``N >= D`` at least ``N - D + 1`` eigenvalues are 0 for every
    network, which shifts all scores by the same large negative amount.
``nwot``
    NASWOT (Mellor et al. 2021, "Neural Architecture Search without Training"): in
    train mode, every application of a rectifier records a binary code per sample,
    ``c = input > 0`` over all its units; ``K[i, j]`` is the number of units on
    which samples ``i`` and ``j`` agree (``N_A`` minus their Hamming distance,
    summed over all rectifiers) and the score is ``log |det K|`` (``slogdet``).
    What is captured: every call, inside the forward pass, of ``relu`` (``nn.ReLU``,
    ``F.relu``, ``torch.relu``, ``Tensor.relu`` and their in-place forms: the code
    is taken from the input before the call), ``leaky_relu``, ``prelu``, ``rrelu``
    and ``hardtanh`` with a lower bound of 0 (``nn.ReLU6``), as in the reference
    code, which hooks every module whose type name contains ``ReLU``; and, an
    extension so that networks with smooth gates get a score at all, ``gelu``,
    ``silu``, ``elu``, ``celu``, ``selu``, ``mish`` and ``hardswish`` (again coded
    by the sign of their input). Calls are intercepted with a
    :class:`torch.overrides.TorchFunctionMode`, so functional calls count as well
    as modules; only activations whose first dimension is the batch are used. ``K``
    has integer entries, so a non-singular ``K`` has ``log |det K| >= 0``; a
    singular ``K`` (decided exactly, by its determinant modulo two large primes: e.g.
    two samples with identical codes, or no rectifier at all; ``-inf`` or a
    rounding-noise value in the reference) is reported as 0.0,
    as is any rounding below 0.
``snip``
    SNIP (Lee et al. 2019, as in ``foresight``): in train mode,
    ``sum |w * dL/dw|`` over the weights of the convolution and linear layers, with
    ``L`` the task loss on the minibatch.
``grad_norm``
    In train mode, the sum over the convolution and linear layers of the L2 norm of
    ``dL/dw`` (per-layer norms summed, as in ``foresight``).
``params``
    Trainable parameters, :func:`naslab.workers.measure.count_params`.
``flops``
    FLOPs of the forward pass of **one sample** (the minibatch's first),
    :func:`naslab.workers.measure.count_flops` (a multiply-add counts 2).

"Convolution and linear layers" are the modules that are instances of
``nn.Conv1d/2d/3d``, ``nn.ConvTranspose*d`` or ``nn.Linear``; shared weights count
once. "Train mode" means the proxies run on a copy of the network put in training
mode, so BatchNorm normalises with the batch's statistics (as in the reference code);
stochastic layers (dropout) then draw from a torch RNG seeded with 0 and forked from
the global one, so results are reproducible and the global RNG state is untouched.

The caller's network is never modified: every proxy but ``params`` and ``flops``
works on a :func:`copy.deepcopy` of it, and those two restore its modes.
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from naslab.core.errors import ConfigError
from naslab.core.validation import check_choice, check_int
from naslab.workers.measure import count_flops, count_params

__all__ = ["PROXIES", "architecture_proxies", "compute_proxies", "proxy_batch"]

#: The zero-cost proxies :func:`compute_proxies` knows, in their default order.
PROXIES: tuple[str, ...] = ("synflow", "jacob_cov", "nwot", "snip", "grad_norm", "params", "flops")

#: ``k`` of the jacob_cov score (Mellor et al. 2020).
JACOB_COV_K = 1e-5

#: Values synflow reports for a zero score and for a float64 overflow.
SYNFLOW_LOG_MIN = math.log(sys.float_info.min * sys.float_info.epsilon)  # log(4.9e-324)
SYNFLOW_LOG_MAX = math.log(sys.float_info.max)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_TRAIN_PASS = ("jacob_cov", "nwot", "snip", "grad_norm")
_NEEDS_TWO = ("jacob_cov", "nwot")
_WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear)


# -- inputs -------------------------------------------------------------------------


def _check_names(names: Sequence[str] | str) -> list[str]:
    """The requested proxy names, validated, without duplicates, in first-seen order."""
    if isinstance(names, str):
        names = (names,)
    try:
        listed = list(names)
    except TypeError:
        raise ConfigError(
            f"names must be a sequence of proxy names from {', '.join(PROXIES)}; "
            f"got {type(names).__name__}"
        ) from None
    out: list[str] = []
    for name in listed:
        check_choice("proxy", name, PROXIES)
        if name not in out:
            out.append(name)
    return out


def proxy_batch(
    task: Any, batch_size: int = 64, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The minibatch the proxies are computed on: ``(inputs, integer targets)``.

    The first batch of ``task.loaders(batch_size, seed)``'s training loader, so it
    comes from the training split and the same ``seed`` gives the same batch (for
    tasks whose training order is fixed by the seed, as every built-in task's is).
    It may hold fewer than ``batch_size`` samples when the training split is smaller.
    The global torch RNG state is left as it was.

    Raises:
        ConfigError: ``batch_size`` or ``seed`` is not a valid integer, or the
            training loader yields no batch.
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    # Iterating a DataLoader draws its base seed from the global torch RNG: fork it.
    with torch.random.fork_rng(devices=[]):
        train = task.loaders(batch_size, seed)[0]
        for batch in train:
            return batch[0], batch[1]
    raise ConfigError(f"task {getattr(task, 'name', '?')!r}: the training loader yields no data")


def _check_batch(inputs: Any, targets: Any) -> None:
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 1 or len(inputs) == 0:
        raise ConfigError(
            "inputs must be a tensor of shape (batch, *input_shape) with at least one sample, "
            "got "
            + (
                f"shape {tuple(inputs.shape)}"
                if isinstance(inputs, torch.Tensor)
                else type(inputs).__name__
            )
        )
    if not inputs.is_floating_point():
        raise ConfigError(f"inputs must have a floating dtype, got {inputs.dtype}")
    if not bool(torch.isfinite(inputs).all()):
        raise ConfigError("inputs contain NaN or infinite values")
    if not isinstance(targets, torch.Tensor) or targets.dim() < 1:
        raise ConfigError(
            "targets must be a tensor with one entry per sample, got "
            + (
                f"shape {tuple(targets.shape)}"
                if isinstance(targets, torch.Tensor)
                else type(targets).__name__
            )
        )
    if len(targets) != len(inputs):
        raise ConfigError(
            f"inputs hold {len(inputs)} samples but targets {len(targets)}; they must match"
        )


def _reference_tensor(model: nn.Module) -> torch.Tensor | None:
    for t in model.parameters():
        if t.is_floating_point():
            return t
    for t in model.buffers():
        if t.is_floating_point():
            return t
    return None


# -- helpers ------------------------------------------------------------------------


def _weights(model: nn.Module) -> list[nn.Parameter]:
    """Weights of the convolution and linear layers, shared ones once."""
    seen: set[int] = set()
    out: list[nn.Parameter] = []
    for m in model.modules():
        w = getattr(m, "weight", None)
        if isinstance(m, _WEIGHTED) and isinstance(w, nn.Parameter) and id(w) not in seen:
            seen.add(id(w))
            out.append(w)
    return out


def _rng_devices(device: torch.device) -> list[int]:
    if device.type == "cuda":
        return [device.index if device.index is not None else torch.cuda.current_device()]
    return []


def _output_tensor(out: Any) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise ConfigError(
            f"the model must return a tensor (the logits); it returned {type(out).__name__}"
        )
    return out


_RECTIFIERS = frozenset(
    {
        "relu",
        "relu_",
        "relu6",
        "leaky_relu",
        "leaky_relu_",
        "prelu",
        "rrelu",
        "rrelu_",
        "gelu",
        "silu",
        "elu",
        "elu_",
        "celu",
        "celu_",
        "selu",
        "selu_",
        "mish",
        "hardswish",
    }
)


class _ActivationCodes(TorchFunctionMode):
    """Accumulates NASWOT's kernel ``K`` from every rectifier applied while active."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.kernel: torch.Tensor | None = None
        self.units = 0

    def _is_rectifier(self, func: Any, args: tuple, kwargs: dict) -> bool:
        name = getattr(func, "__name__", "")
        if name in _RECTIFIERS:
            return True
        if name in ("hardtanh", "hardtanh_"):  # nn.ReLU6 is hardtanh(0, 6)
            low = args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)
            return low == 0
        return False

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: D105
        kwargs = kwargs or {}
        if args and self._is_rectifier(func, args, kwargs):
            x = args[0]
            if (
                isinstance(x, torch.Tensor)
                and x.is_floating_point()
                and x.dim() >= 1
                and x.shape[0] == self.n
                and x.numel() > 0
            ):
                # +1 where active, -1 where not: c c^T = agreements - disagreements,
                # so (units + c c^T) / 2 = units - Hamming distance.
                with torch.no_grad():
                    c = (x.detach().reshape(self.n, -1) > 0).to(torch.float64) * 2 - 1
                    k = c @ c.T
                    self.kernel = k if self.kernel is None else self.kernel + k
                    self.units += c.shape[1]
        return func(*args, **kwargs)

    def score(self) -> float:
        """``log |det K|``; 0.0 for a singular ``K`` (and any rounding below 0)."""
        if self.kernel is None:
            return 0.0
        k = ((self.kernel + self.units) / 2).cpu().numpy()
        if _singular_integer_matrix(k):
            return 0.0
        _, logdet = np.linalg.slogdet(k)
        return max(float(logdet), 0.0) if math.isfinite(logdet) else 0.0


#: Primes for the exact singularity test of NASWOT's integer kernel.
_PRIMES = (2_147_483_647, 2_147_483_629)


def _singular_integer_matrix(a: np.ndarray) -> bool:
    """Whether the square integer matrix ``a`` is singular, decided exactly.

    Its determinant is computed modulo two primes near 2^31 by Gaussian elimination
    in integer arithmetic: a non-zero residue proves it non-singular; zero residues for
    both primes mean singular (a non-zero determinant divisible by both primes is
    astronomically unlikely). Floating-point rank tests can misjudge the
    ill-conditioned integer matrices NASWOT produces.
    """
    if not np.all(np.isfinite(a)) or np.any(np.abs(a) >= 2.0**53):
        # Counts beyond float64's exact integers (never in practice): a rank estimate.
        return bool(np.linalg.matrix_rank(a) < len(a))
    ints = np.rint(a).astype(np.int64)
    n = len(ints)
    for p in _PRIMES:
        m = ints % p
        singular = False
        for col in range(n):
            rows = np.nonzero(m[col:, col])[0]
            if len(rows) == 0:
                singular = True
                break
            piv = col + int(rows[0])
            if piv != col:
                m[[col, piv]] = m[[piv, col]]
            inv = pow(int(m[col, col]), p - 2, p)
            factors = (m[col + 1 :, col] * inv) % p
            m[col + 1 :] = (m[col + 1 :] - (factors[:, None] * m[col]) % p) % p
        if not singular:
            return False
    return True


def jacob_cov_floor(n: int) -> float:
    """The lowest jacob_cov score of ``n`` samples (a rank-one correlation matrix)."""
    k = JACOB_COV_K
    return -((n - 1) * (math.log(k) + 1 / k) + math.log(n + k) + 1 / (n + k))


def _jacob_cov_score(jacob: torch.Tensor) -> float:
    j = jacob.detach().reshape(len(jacob), -1).to("cpu", torch.float64).numpy()
    n = len(j)
    centred = j - j.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1)
    if not np.all(np.isfinite(centred)) or np.any(norms == 0):
        return jacob_cov_floor(n)
    unit = centred / norms[:, None]
    corr = unit @ unit.T
    v = np.clip(np.linalg.eigvalsh(corr), 0.0, None)
    k = JACOB_COV_K
    score = -float(np.sum(np.log(v + k) + 1.0 / (v + k)))
    return max(score, jacob_cov_floor(n)) if math.isfinite(score) else jacob_cov_floor(n)


def _train_pass(
    work: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    names: list[str],
    loss_fn: LossFn,
) -> dict[str, float]:
    """jacob_cov, nwot, snip and grad_norm from one train-mode forward pass of ``work``."""
    out: dict[str, float] = {}
    want_grads = "snip" in names or "grad_norm" in names
    want_jacob = "jacob_cov" in names
    weights = _weights(work)
    for w in weights:
        w.requires_grad_(True)
    work.train()
    x = x.detach().clone().requires_grad_(want_jacob)
    codes = _ActivationCodes(len(x))
    with torch.random.fork_rng(devices=_rng_devices(x.device)):
        torch.manual_seed(0)
        with torch.enable_grad():
            if "nwot" in names:
                with codes:
                    y = _output_tensor(work(x))
            else:
                y = _output_tensor(work(x))
            if "nwot" in names:
                out["nwot"] = codes.score()
            if want_grads:
                loss = loss_fn(y, targets)
                if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                    raise ConfigError(
                        "loss_fn must return a scalar tensor, got "
                        + (
                            f"shape {tuple(loss.shape)}"
                            if isinstance(loss, torch.Tensor)
                            else type(loss).__name__
                        )
                    )
                grads: list[torch.Tensor | None] = [None] * len(weights)
                if loss.requires_grad and weights:
                    grads = list(
                        torch.autograd.grad(
                            loss.reshape(()), weights, retain_graph=want_jacob, allow_unused=True
                        )
                    )
                snip = 0.0
                norm = 0.0
                for w, g in zip(weights, grads, strict=True):
                    if g is None:
                        continue
                    snip += float((w.detach() * g).abs().sum(dtype=torch.float64))
                    norm += float(g.to(torch.float64).norm())
                if "snip" in names:
                    out["snip"] = snip
                if "grad_norm" in names:
                    out["grad_norm"] = norm
            if want_jacob:
                jacob = None
                if y.requires_grad:
                    (jacob,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
                if jacob is None:
                    jacob = torch.zeros_like(x)
                out["jacob_cov"] = _jacob_cov_score(jacob)
    return out


def _synflow(work: nn.Module, input_shape: Sequence[int]) -> float:
    """log synflow of ``work``, which this modifies (BatchNorm removed, |params|, float64)."""
    for parent in list(work.modules()):
        for name, child in list(parent._modules.items()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                parent._modules[name] = nn.Identity()
    work.double()
    work.eval()
    with torch.no_grad():
        for t in work.state_dict().values():
            if t.is_floating_point():
                t.abs_()
    weights = _weights(work)
    for w in weights:
        w.requires_grad_(True)
    ref = _reference_tensor(work)
    device = ref.device if ref is not None else torch.device("cpu")
    ones = torch.ones((1, *input_shape), dtype=torch.float64, device=device)
    with torch.enable_grad():
        r = _output_tensor(work(ones)).sum()
        if not r.requires_grad or not weights:
            return SYNFLOW_LOG_MIN
        grads = torch.autograd.grad(r, weights, allow_unused=True)
    score = 0.0
    for w, g in zip(weights, grads, strict=True):
        if g is not None:
            score += float((w.detach() * g).abs().sum())
    if not math.isfinite(score):
        return SYNFLOW_LOG_MAX
    if score <= 0.0:
        return SYNFLOW_LOG_MIN
    return min(max(math.log(score), SYNFLOW_LOG_MIN), SYNFLOW_LOG_MAX)


# -- public API ---------------------------------------------------------------------


def compute_proxies(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    names: Sequence[str] = PROXIES,
    loss_fn: LossFn | None = None,
) -> dict[str, float]:
    """Zero-cost proxies of ``model`` on one minibatch (see the module docstring).

    Args:
        model: the (untrained) network; it is not modified (parameters, buffers,
            gradients, train/eval modes and ``requires_grad`` flags stay as they are).
        inputs: a minibatch of shape ``(batch, *input_shape)``; it is moved to the
            model's device and floating dtype. ``jacob_cov`` and ``nwot`` need at
            least two samples.
        targets: the minibatch's targets (class indices for cross-entropy), used by
            ``snip`` and ``grad_norm``.
        names: the proxies to compute, from :data:`PROXIES` (a single name may be
            given as a string); duplicates are computed once.
        loss_fn: ``(output, targets) -> scalar``; cross-entropy when omitted (pass
            ``task.loss`` for a task's own loss).

    Returns:
        ``{name: value}`` in the order of ``names``, every value a finite float;
        higher means a better predicted network (see the module docstring for each
        proxy's definition, scale and degenerate cases; ``synflow`` is a natural log).

    Raises:
        UnknownNameError: a name is not one of :data:`PROXIES` (the message lists them).
        ConfigError: the batch is malformed (not a tensor, non-finite, targets of
            another length, one sample for jacob_cov or nwot), the model has
            non-finite parameters or does not return a tensor, or ``loss_fn`` does not
            return a scalar.
    """
    wanted = _check_names(names)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_batch(inputs, targets)
    if len(inputs) < 2 and any(n in wanted for n in _NEEDS_TWO):
        raise ConfigError(
            "jacob_cov and nwot compare samples and need a minibatch of at least 2, got 1"
        )
    if loss_fn is None:
        loss_fn = F.cross_entropy
    elif not callable(loss_fn):
        raise ConfigError(f"loss_fn must be callable (output, targets) -> scalar, got {loss_fn!r}")
    for name, p in model.named_parameters():
        if p.is_floating_point() and not bool(torch.isfinite(p).all()):
            raise ConfigError(f"the model's parameter {name!r} holds NaN or infinite values")

    ref = _reference_tensor(model)
    x = inputs.detach()
    if ref is not None:
        x = x.to(ref.device, ref.dtype)
        targets = targets.to(ref.device)
    values: dict[str, float] = {}
    if "params" in wanted:
        values["params"] = float(count_params(model))
    if "flops" in wanted:
        values["flops"] = float(count_flops(model, x))
    train_names = [n for n in wanted if n in _TRAIN_PASS]
    if train_names or "synflow" in wanted:
        work = copy.deepcopy(model)
        if train_names:
            values.update(_train_pass(work, x, targets, train_names, loss_fn))
        if "synflow" in wanted:
            values["synflow"] = _synflow(work, tuple(x.shape[1:]))
        del work
    return {n: values[n] for n in wanted}


def architecture_proxies(
    space: Any,
    arch: Any,
    task: Any,
    names: Sequence[str] = PROXIES,
    batch_size: int = 64,
    seed: int = 0,
) -> dict[str, float]:
    """Zero-cost proxies of ``arch`` from ``space`` on ``task``'s data.

    The network is built by ``space.build(arch, task)`` with the torch RNG seeded by
    ``seed`` (in a forked RNG, so the global state is untouched) and scored by
    :func:`compute_proxies` on :func:`proxy_batch` ``(task, batch_size, seed)`` with
    the task's loss. The same arguments give identical values.

    Raises:
        UnknownNameError: a name is not one of :data:`PROXIES`.
        ConfigError: ``batch_size`` or ``seed`` is invalid (see also
            :func:`compute_proxies`).
    """
    wanted = _check_names(names)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = space.build(arch, task)
    inputs, targets = proxy_batch(task, batch_size, seed)
    loss_fn = getattr(task, "loss", None)
    return compute_proxies(model, inputs, targets, wanted, loss_fn=loss_fn)
