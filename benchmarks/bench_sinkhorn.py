"""Sinkhorn divergence: otloss vs GeomLoss (tensorized, KeOps), OTT-JAX and POT.

CPU, float32, p = 2, blur = 0.05, forward + backward into both clouds unless a row says
otherwise. Every Sinkhorn row prints its backward/forward time ratio. The accuracy
trade-off (relative value error against time) is drawn into
``docs/assets/sinkhorn_tradeoff.png``. Run: ``python -m benchmarks bench_sinkhorn``.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys
import time
import warnings

import torch

from benchmarks.harness import REPORT, phases, table, write_section

BLUR = 0.05
FIXED = {"tol": None, "rtol": None}
FIGURE = REPORT.parent / "assets" / "sinkhorn_tradeoff.png"


def _clouds(n, m, d, seed, batch=(), device="cpu"):
    g = torch.Generator(device).manual_seed(seed)
    x = torch.randn(*batch, n, d, generator=g, device=device)
    return x, torch.randn(*batch, m, d, generator=g, device=device) + 0.5


def _fmt(ph):
    return (
        f"{ph['total']:.2f} s (fwd {ph['fwd']:.2f}, bwd {ph['bwd']:.2f}; "
        f"bwd/fwd {ph['ratio']:.2f})"
    )


def _geomloss(backend="tensorized", **kw):
    from geomloss import SamplesLoss

    return SamplesLoss("sinkhorn", p=2, blur=BLUR, scaling=0.5, backend=backend, **kw)


def _large(rows):
    import otloss

    x, y = _clouds(4096, 4096, 64, 0)
    ours = phases(lambda u, v: otloss.sinkhorn_divergence(u, v, **FIXED), x, y)
    geom = phases(_geomloss(), x, y)
    rows.append([
        "4096x4096, D=64, fixed schedule (GeomLoss's)", _fmt(ours),
        f"GeomLoss tensorized {_fmt(geom)}", f"{geom['total'] / ours['total']:.1f}x faster",
    ])  # fmt: skip
    ref = float(otloss.sinkhorn_divergence(x.double(), y.double(), rtol=1e-6, max_iter=2000))
    default = phases(lambda u, v: otloss.sinkhorn_divergence(u, v), x, y, repeats=1)
    out = otloss.sinkhorn_divergence(x, y, potentials=True)
    fixed = float(otloss.sinkhorn_divergence(x, y, **FIXED))
    rows.append([
        "4096x4096, D=64, converged default (rtol=1e-4)",
        f"{_fmt(default)}, {out.iterations} updates, rel. error "
        f"{abs(float(out.value) - ref) / ref:.1e}",
        f"fixed schedule: rel. error {abs(fixed - ref) / ref:.1e}",
        f"{default['total'] / ours['total']:.1f}x the fixed schedule's time; reference: "
        "float64, rtol=1e-6",
    ])  # fmt: skip


def _batched(rows):
    import otloss

    x, y = _clouds(512, 512, 16, 3, batch=(8,))
    ours = phases(lambda u, v: otloss.sinkhorn_divergence(u, v, **FIXED), x, y, repeats=5)
    geom = phases(_geomloss(), x, y, repeats=5)
    rows.append([
        "batched B=8, 512x512, D=16, fixed schedule", _fmt(ours), f"GeomLoss {_fmt(geom)}",
        f"{geom['total'] / ours['total']:.1f}x faster",
    ])  # fmt: skip


def _vs_pot(rows):
    import ot

    import otloss

    x, y = _clouds(1024, 1024, 3, 1)
    a = torch.full((len(x),), 1 / len(x))
    pot_iters = 100

    def pot_run():
        xr = x.clone().requires_grad_(True)
        m = ot.dist(xr, y) / 2
        value, log = ot.sinkhorn2(
            a, a, m, BLUR**2, method="sinkhorn_log", numItermax=pot_iters, stopThr=0.0, log=True
        )
        value.backward()
        return log

    t0 = time.perf_counter()
    pot_run()
    pot_time = time.perf_counter() - t0
    plan = ot.sinkhorn(
        a, a, ot.dist(x, y) / 2, BLUR**2, method="sinkhorn_log", numItermax=pot_iters, stopThr=0.0
    )
    pot_err = float((plan.sum(0) - a).abs().sum() + (plan.sum(1) - a).abs().sum())
    tol = max(pot_err, 1e-6)
    ours = phases(lambda u, v: otloss.sinkhorn_divergence(u, v, debias=False, tol=tol), x, y)
    out = otloss.sinkhorn_divergence(x, y, debias=False, tol=tol, potentials=True)
    rows.append([
        f"1024x1024, D=3, OT_eps (debias=False) to POT's L1 marginal error {pot_err:.1e} "
        f"after {pot_iters} log-domain iterations",
        f"{_fmt(ours)}, {out.iterations} updates",
        f"POT sinkhorn2(method='sinkhorn_log') fwd+bwd {pot_time:.2f} s",
        f"{pot_time / ours['total']:.0f}x faster at equal error",
    ])  # fmt: skip


# Peak resident memory of this process. Not ru_maxrss: Linux carries the parent's
# high-water mark across exec, VmHWM belongs to the new address space alone.
_PEAK_RSS_MB = (
    "float(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM'))) / 1024"
)

_BLOCKED_CHILD = f"""
import json, time, torch, otloss
g = torch.Generator().manual_seed(2)
x = torch.randn(16384, 3, generator=g, requires_grad=True)
y = torch.randn(16384, 3, generator=g) + 0.5
t0 = time.perf_counter()
v = otloss.sinkhorn_divergence(x, y, backend="blocked", tol=None, rtol=None)
t1 = time.perf_counter()
v.backward()
t2 = time.perf_counter()
print(json.dumps({{"fwd": t1 - t0, "bwd": t2 - t1, "rss_mb": {_PEAK_RSS_MB}}}))
"""


def _child(code: str) -> dict:
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _blocked(rows):
    base = float(_child(f"import json, torch, otloss; print(json.dumps({_PEAK_RSS_MB}))"))
    info = _child(_BLOCKED_CHILD)
    ph = {"fwd": info["fwd"], "bwd": info["bwd"], "total": info["fwd"] + info["bwd"]}
    ph["ratio"] = ph["bwd"] / ph["fwd"]
    keops = "KeOps not installed (pip install pykeops)"
    if importlib.util.find_spec("pykeops") is not None:
        x, y = _clouds(16384, 16384, 3, 2)
        online = _geomloss("online")
        online(x[:64], y[:64])  # compiles the KeOps formulas (minutes, once): not timed
        kp = phases(online, x, y, repeats=1)
        keops = f"GeomLoss online (KeOps, CPU) {_fmt(kp)}; {kp['total'] / ph['total']:.1f}x"
    rows.append([
        "16384x16384, D=3, backend='blocked', fixed schedule",
        f"{_fmt(ph)}, peak RSS {info['rss_mb']:.0f} MB (torch + otloss alone: {base:.0f} MB)",
        keops, "GeomLoss tensorized would need 4 x 1 GiB matrices",
    ])  # fmt: skip


def _ott(rows):
    """OTT-JAX's debiased divergence at the same marginal threshold, 2048x2048, D=3."""
    if importlib.util.find_spec("ott") is None:
        rows.append(["OTT-JAX", "not installed (pip install ott-jax)", "", ""])
        return
    import jax
    import jax.numpy as jnp
    from ott.geometry import pointcloud
    from ott.tools import sinkhorn_divergence as ott_sd

    import otloss

    x, y = _clouds(2048, 2048, 3, 4)
    threshold = 1e-3

    @jax.jit
    def ott_value_and_grad(u, v):
        def value(u, v):
            divergence, _ = ott_sd.sinkhorn_divergence(
                pointcloud.PointCloud, u, v, epsilon=2 * BLUR**2,  # absolute epsilon
                solve_kwargs={"threshold": threshold, "max_iterations": 5000},
            )  # fmt: skip
            return divergence

        return jax.value_and_grad(value, argnums=(0, 1))(u, v)

    u, v = jnp.asarray(x.numpy()), jnp.asarray(y.numpy())
    jax.block_until_ready(ott_value_and_grad(u, v))  # compile: not timed
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        val, _ = jax.block_until_ready(ott_value_and_grad(u, v))
        times.append(time.perf_counter() - t0)
    ott_time = statistics.median(times)
    stop = {"tol": threshold, "rtol": None, "max_iter": 5000}
    ours = phases(lambda a, b: otloss.sinkhorn_divergence(a, b, **stop), x, y)
    mine = otloss.sinkhorn_divergence(x, y, **stop, potentials=True)
    rows.append([
        f"2048x2048, D=3, to an L1 marginal error of {threshold:g} (OTT: cost |x-y|^2, "
        "epsilon = 2 blur^2)", f"{_fmt(ours)}, {mine.iterations} updates",
        f"OTT-JAX sinkhorn_divergence (jit, CPU) {ott_time:.2f} s; value {float(val) / 2:.5f} "
        f"vs otloss {float(mine.value):.5f}", f"{ott_time / ours['total']:.1f}x faster",
    ])  # fmt: skip


def _tradeoff() -> str:
    """Relative value error against time: GeomLoss's schedule, otloss default and tolerances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    import otloss

    problems = [
        ("256 pts, D=3, blur 0.1", _clouds(256, 256, 3, 0), 0.1),
        ("512 pts, D=16, blur 0.05", _clouds(512, 512, 16, 0), 0.05),
        ("1000 pts, D=64, blur 0.05", _clouds(1000, 1000, 64, 0), 0.05),
    ]
    configs = [
        ("GeomLoss", None),
        ("GeomLoss scaling=0.9", None),
        ("otloss fixed schedule", dict(FIXED)),
        ("otloss default (rtol=1e-4)", {}),
        ("otloss rtol=1e-3", {"rtol": 1e-3}),
        ("otloss rtol=1e-6", {"rtol": 1e-6, "max_iter": 5000}),
        ("otloss tol=1e-3", {"tol": 1e-3, "rtol": None, "max_iter": 5000}),
    ]
    fig, axes = plt.subplots(1, len(problems), figsize=(13, 4.8), layout="constrained")
    lines = []
    for ax, (title, (x, y), blur) in zip(axes, problems, strict=True):
        ref = float(otloss.sinkhorn_divergence(
            x.double(), y.double(), blur=blur, rtol=1e-8, max_iter=5000
        ))  # fmt: skip
        for name, kw in configs:
            if kw is None:
                from geomloss import SamplesLoss

                scaling = 0.9 if "0.9" in name else 0.5
                fn = SamplesLoss("sinkhorn", p=2, blur=blur, scaling=scaling, backend="tensorized")
            else:

                def fn(u, v, kw=kw, blur=blur):
                    return otloss.sinkhorn_divergence(u, v, blur=blur, **kw)

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ph = phases(fn, x, y)
                value = float(fn(x, y))
            err = max(abs(value - ref) / ref, 1e-8)
            ax.scatter(ph["total"], err, label=name, s=40)
            lines.append(f"| {title} | {name} | {ph['total'] * 1e3:.0f} ms | {err:.1e} |")
        ax.set(xscale="log", yscale="log", xlabel="fwd + bwd time (s)", title=title)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.axhline(1e-3, color="grey", lw=0.8, ls="--")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("relative error of the value")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=9)
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=110)
    plt.close(fig)
    header = "| problem | method | fwd + bwd | rel. error |\n|---|---|---|---|\n"
    return header + "\n".join(lines)


def main() -> None:
    torch.manual_seed(0)
    rows: list[list[object]] = []
    for part in (_batched, _vs_pot, _large, _blocked, _ott):
        part(rows)
        print(rows[-1], flush=True)
    trade = _tradeoff()
    write_section(
        "sinkhorn",
        "## Sinkhorn divergence\n\nCPU, float32, p = 2, blur = 0.05, forward + backward into "
        "both clouds; medians of 3 runs (1 for the default at 4096 and KeOps); every otloss "
        "row gives its backward/forward time ratio.\n\n"
        + table(["case", "otloss", "reference", "ratio / note"], rows)
        + "\n\n### Accuracy against time\n\nRelative error of the value against a float64 "
        "reference converged to `rtol=1e-8`, float32 inputs (figure: "
        "`docs/assets/sinkhorn_tradeoff.png`, dashed line at 1e-3):\n\n"
        + trade
        + "\n\n![accuracy against time](assets/sinkhorn_tradeoff.png)",
    )


if __name__ == "__main__":
    main()
