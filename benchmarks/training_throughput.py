"""Training throughput: the training evaluator against a hand-written PyTorch loop.

One nb201 architecture (fixed decisions, below) on the digits task is trained by
``TrainingEvaluator(...).evaluate(...)`` with its default settings (batch 32, SGD
with Nesterov momentum 0.9 and weight decay 5e-4, peak learning rate 0.1, per-step
cosine decay, a validation pass after every epoch) and by a plain PyTorch loop
written here doing the same work: the same model (rebuilt after the same
``torch.manual_seed``), the same data tensors and shuffling generator, the same
batch size, optimizer, schedule and per-epoch validation pass.

Figures, as training samples per second (training samples x epochs / seconds):

* ``train``: the evaluator's own ``train_seconds`` (training and per-epoch
  validation) against the hand loop's training and validation time;
* ``whole``: the whole ``evaluate()`` call, which also builds the network and
  measures test accuracy, FLOPs and latency and copies the weights, against the
  hand loop including building the network.

Each thread setting runs ``repeats`` times, alternating which of the two goes
first, after an untimed warm-up of both. Samples per second are medians over the
repeats; the ratio (evaluator / hand loop) is the median of the ratios of the two
runs of each repeat, which ran back to back, so that drift in the machine's speed
between repeats cancels. The target is a ratio of at least 0.9. Torch's intra-op thread count is
set explicitly for each setting (default: 1, as on a Ray worker, and all cores).

Usage: ``python benchmarks/training_throughput.py [--quick] [--threads N ...]
[--json PATH]`` (full: 4 epochs x 11 repeats, about a minute and a half; quick: 2 x 3).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from cpu_monitor import CpuMonitor

from naslab.search_spaces.nb201 import NB201Space
from naslab.workers.evaluator import NullReporter
from naslab.workers.task import digits_task
from naslab.workers.training import TrainingEvaluator

TARGET = 0.9
DECISIONS = {"e0_1": "nor_conv_3x3", "e0_2": "nor_conv_3x3", "e1_2": "skip_connect",
             "e0_3": "nor_conv_1x1", "e1_3": "avg_pool_3x3", "e2_3": "nor_conv_3x3"}
SEED = 0


def hand_loop(space: NB201Space, arch: Any, task: Any, epochs: int, seed: int,
              batch_size: int = 32, lr: float = 0.1, momentum: float = 0.9,
              weight_decay: float = 5e-4) -> dict[str, float]:
    """Plain PyTorch training of the same model on the same tensors.

    Returns the time to build the network, the time of the training epochs (with
    their validation passes), and the final validation accuracy.
    """
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = space.build(arch, task)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=True,
                          weight_decay=weight_decay)
    x, y = task.tensors("train")
    xv, yv = task.tensors("val")
    n = len(y)
    total = math.ceil(n / batch_size) * epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1.0 + math.cos(math.pi * step / total)))
    gen = torch.Generator().manual_seed(seed)
    t1 = time.perf_counter()
    val_acc = train_loss = math.nan
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        loss_sum = 0.0
        for idx in perm.split(batch_size):
            xb, yb = x[idx], y[idx]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(yb)
        train_loss = loss_sum / n
        model.eval()
        with torch.inference_mode():
            out = model(xv)
            F.cross_entropy(out, yv).item()
            val_acc = int((out.argmax(dim=1) == yv).sum()) / len(yv)
        model.train()
    t2 = time.perf_counter()
    return {"build": t1 - t0, "train": t2 - t1, "val_accuracy": val_acc,
            "train_loss": train_loss}


def measure(threads: int, epochs: int, repeats: int) -> dict[str, Any]:
    """Median timings of the evaluator and the hand loop with ``threads`` torch threads."""
    torch.set_num_threads(threads)
    task = digits_task()
    space = NB201Space()
    arch = space.from_decisions(DECISIONS)
    evaluator = TrainingEvaluator(task, batch_size=32)

    def run_evaluator() -> dict[str, float]:
        start = time.perf_counter()
        result = evaluator.evaluate(space, arch, epochs, SEED, NullReporter())
        wall = time.perf_counter() - start
        return {"train": result.train_seconds, "whole": wall,
                "val_accuracy": result.metrics["val_accuracy"]}

    def run_hand() -> dict[str, float]:
        r = hand_loop(space, arch, task, epochs, SEED)
        return {**r, "whole": r["build"] + r["train"]}

    evaluator.evaluate(space, arch, 1, SEED, NullReporter())  # warm-up, untimed
    hand_loop(space, arch, task, 1, SEED)
    ev_runs, hand_runs = [], []
    with CpuMonitor() as cpu:
        start = time.perf_counter()
        for r in range(repeats):
            if r % 2 == 0:
                ev_runs.append(run_evaluator())
                hand_runs.append(run_hand())
            else:
                hand_runs.append(run_hand())
                ev_runs.append(run_evaluator())
        wall = time.perf_counter() - start
    samples = len(task.tensors("train")[1]) * epochs
    out: dict[str, Any] = {"threads": torch.get_num_threads(), "samples": samples,
                           "cpu_others": cpu.others, "wall": wall,
                           "val_ev": ev_runs[-1]["val_accuracy"],
                           "val_hand": hand_runs[-1]["val_accuracy"]}
    for kind in ("train", "whole"):
        ev = statistics.median(r[kind] for r in ev_runs)
        hand = statistics.median(r[kind] for r in hand_runs)
        paired = statistics.median(h[kind] / e[kind] for e, h in zip(ev_runs, hand_runs))
        out[kind] = {"ev_s": ev, "hand_s": hand, "ev_sps": samples / ev,
                     "hand_sps": samples / hand, "ratio": paired, "ratio_of_medians": hand / ev,
                     "ev_all": [r[kind] for r in ev_runs],
                     "hand_all": [r[kind] for r in hand_runs]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and repeats")
    parser.add_argument("--threads", type=int, nargs="+",
                        help="torch thread counts to measure (default: 1 and all cores)")
    parser.add_argument("--json", type=Path, help="write the headline figures here")
    args = parser.parse_args()
    epochs, repeats = (2, 3) if args.quick else (4, 11)
    cores = os.cpu_count() or 1
    settings = args.threads or sorted({1, cores})

    results = [measure(t, epochs, repeats) for t in settings]

    space = NB201Space()
    cell = space.to_string(space.from_decisions(DECISIONS))
    print(f"nb201 (channels=8, cells_per_stage=1) {cell} on digits; {epochs} epochs x "
          f"{results[0]['samples'] // epochs} training samples, "
          f"batch 32, SGD nesterov, cosine; {repeats} repeats (alternating order), medians; "
          f"{cores} cores")
    header = (f"{'threads':>7} {'measure':<7} {'evaluator s':>11} {'hand s':>7} "
              f"{'evaluator samples/s':>19} {'hand samples/s':>14} {'ratio':>6} "
              f"{'ratio of medians':>16}  target")
    print(header)
    print("-" * len(header))
    figures = []
    for r in results:
        for kind in ("train", "whole"):
            m = r[kind]
            ok = m["ratio"] >= TARGET
            print(f"{r['threads']:>7} {kind:<7} {m['ev_s']:>11.3f} {m['hand_s']:>7.3f} "
                  f"{m['ev_sps']:>19.0f} {m['hand_sps']:>14.0f} {m['ratio']:>6.3f} "
                  f"{m['ratio_of_medians']:>16.3f}  "
                  f"{'>= ' if ok else 'BELOW '}{TARGET}")
            cond = {"space": "nb201(channels=8,cells_per_stage=1)", "task": "digits",
                    "decisions": DECISIONS, "epochs": epochs, "batch_size": 32,
                    "torch_threads": r["threads"], "repeats": repeats, "statistic": "median",
                    "timed": ("train_seconds vs hand training+validation" if kind == "train"
                              else "whole evaluate() vs hand build+training+validation")}
            figures += [
                {"name": f"evaluator_{kind}_samples_per_s_t{r['threads']}",
                 "value": round(m["ev_sps"], 1), "unit": "samples/s", "conditions": cond},
                {"name": f"hand_loop_{kind}_samples_per_s_t{r['threads']}",
                 "value": round(m["hand_sps"], 1), "unit": "samples/s", "conditions": cond},
                {"name": f"evaluator_vs_hand_{kind}_t{r['threads']}",
                 "value": round(m["ratio"], 3), "unit": "x",
                 "conditions": {**cond, "statistic": "median of per-repeat ratios",
                                "ratio_of_medians": round(m["ratio_of_medians"], 3),
                                "target": TARGET, "meets_target": ok}},
            ]
    print("(train: the evaluator's train_seconds against the hand loop's epochs; whole: the "
          "whole evaluate() call, with test accuracy, FLOPs, latency and weights, against the "
          "hand loop with building the network; ratio: median over repeats of evaluator samples/s "
          "/ hand samples/s in that repeat; ratio of medians: of the two samples/s columns)")
    print()
    for r in results:
        spread = ", ".join(
            f"{kind} evaluator {min(r[kind]['ev_all']):.3f}-{max(r[kind]['ev_all']):.3f} s, "
            f"hand {min(r[kind]['hand_all']):.3f}-{max(r[kind]['hand_all']):.3f} s"
            for kind in ("train", "whole"))
        print(f"threads {r['threads']}: range over repeats: {spread}")
        same = "same" if r["val_ev"] == r["val_hand"] else "differ"
        print(f"threads {r['threads']}: final val accuracy: evaluator {r['val_ev']:.4f}, "
              f"hand loop {r['val_hand']:.4f} ({same}); other processes used "
              f"{r['cpu_others']:.1f} CPU s during {r['wall']:.1f} s")
        if r["cpu_others"] > 0.05 * cores * r["wall"]:
            print(f"WARNING: other processes used more than 5% of the machine's CPU during the "
                  f"{r['threads']}-thread measurements: those figures are distorted")
    verdict = all(r[k]["ratio"] >= TARGET for r in results for k in ("train", "whole"))
    print(f"all ratios >= {TARGET}: {verdict}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
