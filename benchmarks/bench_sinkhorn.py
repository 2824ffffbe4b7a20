"""Sinkhorn divergence: otloss vs GeomLoss (tensorized) and POT (log-domain sinkhorn2).

CPU, float32, p = 2, blur = 0.05, forward + backward unless a row says otherwise.
Run: ``python -m benchmarks bench_sinkhorn``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import torch

from benchmarks.harness import table, time_call, write_section

BLUR = 0.05


def _fwd_bwd(fn, x, y):
    def run():
        xr, yr = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
        value = fn(xr, yr)
        value.sum().backward()
        return value.detach()

    return run


def _geomloss(**kw):
    from geomloss import SamplesLoss

    return SamplesLoss("sinkhorn", p=2, blur=BLUR, scaling=0.5, backend="tensorized", **kw)


def _large(rows: list[list[object]]) -> None:
    import otloss

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 64, generator=g)
    y = torch.randn(4096, 64, generator=g) + 0.5
    ours = time_call(
        _fwd_bwd(lambda u, v: otloss.sinkhorn_divergence(u, v, tol=None, rtol=None), x, y),
        repeats=3,
        warmup=0,
        max_seconds=120,
    )
    geom = time_call(_fwd_bwd(_geomloss(), x, y), repeats=3, warmup=0, max_seconds=200)
    rows.append(
        [
            "4096x4096, D=64, GeomLoss schedule (tol=None, rtol=None)",
            f"{ours['median']:.2f} s",
            f"GeomLoss tensorized {geom['median']:.2f} s",
            f"{geom['median'] / ours['median']:.1f}x faster",
        ]
    )
    ref = float(otloss.sinkhorn_divergence(x, y, tol=1e-4, max_iter=2000))
    out = otloss.sinkhorn_divergence(x, y, potentials=True)
    t_def = time_call(
        _fwd_bwd(lambda u, v: otloss.sinkhorn_divergence(u, v), x, y), repeats=1, warmup=0
    )
    gl_val = float(_geomloss()(x, y))
    stopped = "max_iter reached" if out.iterations > 1000 else "tol reached"
    rows.append([
        "4096x4096, D=64, converged default (tol=1e-3, max_iter=1000)",
        f"{t_def['median']:.2f} s, {out.iterations} updates ({stopped}, L1 marginal error "
        f"{float(out.marginal_error):.1e}), rel. error {abs(float(out.value) - ref) / ref:.1e}",
        f"GeomLoss {geom['median']:.2f} s, rel. error {abs(gl_val - ref) / ref:.1e}",
        "converged reference: otloss tol=1e-4, max_iter=2000",
    ])


def _vs_pot(rows: list[list[object]]) -> None:
    import ot

    import otloss

    g = torch.Generator().manual_seed(1)
    x = torch.randn(1024, 3, generator=g)
    y = torch.randn(1024, 3, generator=g) + 0.5
    a = torch.full((1024,), 1 / 1024)
    pot_iters = 100

    def pot_run():
        xr = x.clone().requires_grad_(True)
        m = ot.dist(xr, y) / 2
        plan = ot.sinkhorn(
            a, a, m.detach(), BLUR**2, method="sinkhorn_log", numItermax=pot_iters, stopThr=0.0
        )
        value = ot.sinkhorn2(
            a, a, m, BLUR**2, method="sinkhorn_log", numItermax=pot_iters, stopThr=0.0
        )
        value.backward()
        return plan

    t0 = time.perf_counter()
    plan = pot_run()
    pot_time = (time.perf_counter() - t0) / 2  # pot_run solves twice (plan + value)
    pot_err = float((plan.sum(0) - a).abs().sum() + (plan.sum(1) - a).abs().sum())
    tol = max(pot_err, 1e-6)
    ours = time_call(
        _fwd_bwd(lambda u, v: otloss.sinkhorn_divergence(u, v, debias=False, tol=tol), x, y),
        repeats=3,
        warmup=1,
    )
    out = otloss.sinkhorn_divergence(x, y, debias=False, tol=tol, potentials=True)
    pot_1000 = pot_time * 1000 / pot_iters
    rows.append(
        [
            f"1024x1024, D=3, eps={BLUR**2}, to POT's L1 marginal error {pot_err:.1e} "
            f"after {pot_iters} iterations",
            f"{ours['median']:.3f} s ({out.iterations} updates)",
            f"POT sinkhorn_log fwd+bwd: {pot_time:.2f} s for {pot_iters} iterations "
            f"(extrapolated {pot_1000:.1f} s for 1000)",
            f"{pot_time / ours['median']:.0f}x faster at equal error",
        ]
    )


# Peak resident memory of this process. Not ru_maxrss: Linux carries the parent's
# high-water mark across exec, VmHWM belongs to the new address space alone.
_PEAK_RSS_MB = (
    "float(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM'))) / 1024"
)

_BLOCKED_CHILD = f"""
import sys, time, torch, otloss
g = torch.Generator().manual_seed(2)
x = torch.randn(16384, 3, generator=g, requires_grad=True)
y = torch.randn(16384, 3, generator=g) + 0.5
t0 = time.perf_counter()
v = otloss.sinkhorn_divergence(x, y, backend="blocked", tol=None, rtol=None)
v.backward()
t1 = time.perf_counter()
print({{"time": t1 - t0, "rss_mb": {_PEAK_RSS_MB}, "value": float(v)}})
"""


def _blocked(rows: list[list[object]]) -> None:
    base = subprocess.run(
        [sys.executable, "-c", f"import torch, otloss; print({_PEAK_RSS_MB})"],
        capture_output=True,
        text=True,
        check=True,
    )
    res = subprocess.run(
        [sys.executable, "-c", _BLOCKED_CHILD], capture_output=True, text=True, check=True
    )
    info = json.loads(res.stdout.strip().replace("'", '"'))
    rows.append(
        [
            "16384x16384, D=3, backend='blocked', tol=None",
            f"{info['time']:.1f} s, peak RSS {info['rss_mb']:.0f} MB "
            f"(import of torch+otloss alone: {float(base.stdout):.0f} MB)",
            "GeomLoss needs KeOps here (tensorized: 4 x 1 GiB matrices)",
            "",
        ]
    )


def _batched(rows: list[list[object]]) -> None:
    import otloss

    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 512, 16, generator=g)
    y = torch.randn(8, 512, 16, generator=g) + 0.5
    fixed = {"tol": None, "rtol": None}
    ours = time_call(_fwd_bwd(lambda u, v: otloss.sinkhorn_divergence(u, v, **fixed), x, y))
    geom = time_call(_fwd_bwd(_geomloss(), x, y))
    rows.append(
        [
            "batched B=8, 512x512, D=16, tol=None",
            f"{ours['median']:.3f} s",
            f"GeomLoss {geom['median']:.3f} s",
            f"{geom['median'] / ours['median']:.1f}x faster",
        ]
    )


def main() -> None:
    rows: list[list[object]] = []
    for part in (_batched, _vs_pot, _blocked, _large):
        part(rows)
        print(rows[-1], flush=True)
    write_section(
        "sinkhorn",
        "## Sinkhorn divergence\n\nCPU, float32, p = 2, blur = 0.05, forward + backward; "
        "times are medians of up to 3 runs.\n\n"
        + table(["case", "otloss", "reference", "ratio / note"], rows),
    )


if __name__ == "__main__":
    main()
