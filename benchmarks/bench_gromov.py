"""Entropic Gromov-Wasserstein: otloss's batched solver vs POT (one, a loop, ot.batch), TorchGW.

CPU, float32, square loss, unit-scale Euclidean costs (each matrix divided by its largest
entry), epsilon = 1e-2, product-coupling start. Rows:

- one problem at N = 256 (784-d vs 16-d clustered clouds): otloss vs POT's
  ``entropic_gromov_wasserstein2`` (PGD, the same problem and value) and TorchGW's
  ``sampled_gw`` (sampled GW, another estimator: its plan is scored with the same objective);
- a batch of 16 problems at N = 64: one otloss call vs POT's loop and POT's
  ``ot.batch.solve_gromov_batch`` (proximal point on the unregularised problem, one shared
  size: another algorithm, its objective reported next to ours);
- a batch of 16 problems of sizes 32-96 (zero-weight padding): one otloss call vs POT's
  loop (``ot.batch`` needs one shared size).

Forward only (POT's value has no envelope gradient to compare). Run:
``python -m benchmarks bench_gromov``; ``python -m benchmarks.bench_gromov --smoke`` runs
tiny sizes and writes nothing.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings

import numpy as np
import torch

from benchmarks.harness import table, time_call, write_section

EPSILON = 1e-2
#: Seconds of POT's per-problem loop measured per batch row before extrapolating.
_POT_BUDGET_S = 60.0


def _clouds(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-scale distance matrices of clustered 784-d and 16-d clouds (float32)."""
    g = torch.Generator().manual_seed(seed)
    cx = 3 * torch.randn(4, 784, generator=g)
    cz = 3 * torch.randn(4, 16, generator=g)
    x = cx[torch.arange(n) % 4] + torch.randn(n, 784, generator=g)
    z = cz[torch.arange(n) % 4] + torch.randn(n, 16, generator=g)
    dx, dz = torch.cdist(x, x), torch.cdist(z, z)
    dx, dz = dx / dx.max(), dz / dz.max()
    return (dx + dx.T) / 2, (dz + dz.T) / 2


def _pot(dx: torch.Tensor, dz: torch.Tensor) -> float:
    import ot

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(
            ot.gromov.entropic_gromov_wasserstein2(
                dx.numpy(), dz.numpy(), epsilon=EPSILON, solver="PGD"
            )
        )


def _objective(dx: torch.Tensor, dz: torch.Tensor, plan: torch.Tensor) -> float:
    """Square-loss GW objective of ``plan``, from its own marginals."""
    a, b = plan.sum(1), plan.sum(0)
    const = (dx**2 @ a)[:, None] + (dz**2 @ b)[None, :]
    return float(((const - 2 * dx @ plan @ dz) * plan).sum())


def _single(rows: list[list[object]], n: int) -> None:
    import otloss

    dx, dz = _clouds(n, 0)
    ours = time_call(lambda: otloss.gromov_wasserstein(dx, dz, epsilon=EPSILON), repeats=5)
    value = float(otloss.gromov_wasserstein(dx, dz, epsilon=EPSILON))
    pot = time_call(lambda: _pot(dx, dz), repeats=3, warmup=0)
    ref = _pot(dx, dz)
    rows.append([
        f"one problem, N = {n}",
        f"{ours['median'] * 1e3:.1f} ms (GW {value:.5f})",
        f"POT entropic_gromov_wasserstein2: {pot['median'] * 1e3:.1f} ms (GW {ref:.5f})",
        f"{pot['median'] / ours['median']:.1f}x, rel. diff. {abs(value - ref) / ref:.1e}",
    ])
    try:
        import torchgw
    except ImportError:
        rows.append([f"one problem, N = {n}", "", "TorchGW not installed", ""])
        return

    def run_torchgw() -> torch.Tensor:
        return torchgw.sampled_gw(
            dist_source=dx.double(), dist_target=dz.double(), distance_mode="precomputed",
            epsilon=EPSILON,
        )

    tgw = time_call(run_torchgw, repeats=3, warmup=0)
    tgw_value = _objective(dx.double(), dz.double(), run_torchgw().double())
    rows.append([
        f"one problem, N = {n}",
        f"{ours['median'] * 1e3:.1f} ms (GW {value:.5f})",
        f"TorchGW sampled_gw: {tgw['median'] * 1e3:.1f} ms (GW of its plan {tgw_value:.5f})",
        f"{tgw['median'] / ours['median']:.1f}x",
    ])


def _padded(problems: list[tuple[torch.Tensor, torch.Tensor]]):
    """Zero-weight padding of a list of (dx, dz) into one batch."""
    n = max(dx.shape[0] for dx, _ in problems)
    m = max(dz.shape[0] for _, dz in problems)
    cx, cz = torch.zeros(len(problems), n, n), torch.zeros(len(problems), m, m)
    a, b = torch.zeros(len(problems), n), torch.zeros(len(problems), m)
    for k, (dx, dz) in enumerate(problems):
        cx[k, : dx.shape[0], : dx.shape[0]], cz[k, : dz.shape[0], : dz.shape[0]] = dx, dz
        a[k, : dx.shape[0]], b[k, : dz.shape[0]] = 1 / dx.shape[0], 1 / dz.shape[0]
    return cx, cz, a, b


def _batch(rows: list[list[object]], sizes: list[int], label: str) -> None:
    import otloss

    problems = [_clouds(n, seed) for seed, n in enumerate(sizes)]
    cx, cz, a, b = _padded(problems)

    def ours_run() -> torch.Tensor:
        return otloss.gromov_wasserstein(cx, cz, a, b, epsilon=EPSILON, symmetric=True)

    ours = time_call(ours_run, repeats=5)
    values = ours_run()
    # POT's loop runs once; past _POT_BUDGET_S its time is extrapolated from the mean.
    times, refs = [], []
    for dx, dz in problems:
        t0 = time.perf_counter()
        refs.append(_pot(dx, dz))
        times.append(time.perf_counter() - t0)
        if sum(times) > _POT_BUDGET_S:
            break
    loop_s = statistics.mean(times) * len(problems)
    part = "" if len(times) == len(problems) else (
        f", extrapolated from {len(times)} of {len(problems)} problems"
    )
    err = float(np.max(np.abs(values.numpy()[: len(refs)] - np.array(refs)) / np.array(refs)))
    rows.append([
        label,
        f"{ours['median'] * 1e3:.1f} ms",
        f"POT loop of entropic_gromov_wasserstein2: {loop_s * 1e3:.0f} ms{part}",
        f"{loop_s / ours['median']:.1f}x, max rel. diff. {err:.1e}",
    ])
    if len(set(sizes)) > 1:
        rows.append([label, "", "POT ot.batch: needs one shared size", ""])
        return
    from ot.batch import solve_gromov_batch

    def pot_batch():
        return solve_gromov_batch(cx, cz, reg=EPSILON, a=a, b=b, loss="sqeuclidean",
                                  symmetric=True)

    batched = time_call(pot_batch, repeats=3, warmup=0)
    res = pot_batch()
    rows.append([
        label,
        f"{ours['median'] * 1e3:.1f} ms (mean GW {float(values.mean()):.5f})",
        f"POT ot.batch.solve_gromov_batch (proximal point, its defaults): "
        f"{batched['median'] * 1e3:.1f} ms (mean objective {float(res.value_quad.mean()):.5f})",
        f"{batched['median'] / ours['median']:.1f}x",
    ])


def main(smoke: bool = False) -> None:
    rows: list[list[object]] = []
    n, batch_n, mixed = (24, 12, (8, 16)) if smoke else (256, 64, (32, 96))
    count = 3 if smoke else 16
    _single(rows, n)
    print(rows[-1], flush=True)
    _batch(rows, [batch_n] * count, f"batch of {count} problems, N = {batch_n}")
    print(rows[-1], flush=True)
    sizes = np.linspace(*mixed, count).round().astype(int).tolist()
    _batch(rows, sizes, f"batch of {count} problems, N = M from {mixed[0]} to {mixed[1]}")
    print(rows[-1], flush=True)
    report = (
        "## Entropic Gromov-Wasserstein solver\n\n"
        "CPU, float32, square loss, unit-scale Euclidean costs of clustered 784-d vs 16-d "
        f"clouds, epsilon = {EPSILON}, forward only, default tolerances (otloss: plan change "
        "1e-6, inner L1 marginal error 1e-4; POT: 1e-9 and 1e-9). TorchGW and `ot.batch` "
        "run other algorithms (sampled GW; proximal point): their objectives are shown, not "
        "compared.\n\n"
        + table(["case", "otloss gromov_wasserstein", "reference", "reference / otloss time"], rows)
    )
    if smoke:
        print(report)
    else:
        write_section("gromov", report)


if __name__ == "__main__":
    main(smoke="--smoke" in sys.argv)
