"""otloss.distributed and the estimators' gather=True, against one process on the whole batch.

One spawn of two gloo processes on the CPU runs every distributed case (real DDP around a
small encoder and the estimator) and saves what each rank saw; the tests compare it with
the single-process estimate and gradients on the concatenated batch.
"""

import datetime
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from otloss import MMD, GWEstimator, SinkhornDivergence, TotalCorrelation, mmd
from otloss.distributed import gather, gather_clouds, is_distributed, rank, world_size

WORLD = 2
LOCAL = 4  # samples per rank; the global batch has WORLD * LOCAL
DTYPE = torch.float64
ESTIMATORS = ("gw", "mmd", "mmd_weighted", "tc", "sinkhorn")


# --------------------------------------------------------------------------- the cases


def _data() -> dict[str, torch.Tensor]:
    """The global batch (every process builds the same one and takes its slice)."""
    g = torch.Generator().manual_seed(0)
    n = WORLD * LOCAL

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=DTYPE)

    def weights() -> torch.Tensor:  # per rank: positive, summing to 1 on each rank
        w = torch.rand(WORLD, LOCAL, generator=g, dtype=DTYPE) + 0.1
        return (w / w.sum(-1, keepdim=True)).reshape(n)

    return {"u": randn(n, 3), "prior": randn(n, 2) + 0.5, "eps": randn(n, 2),
            "a": weights(), "b": weights()}  # fmt: skip


class _Case(nn.Module):
    """A small encoder and an estimator; the loss of the samples ``part`` of the batch."""

    def __init__(self, name: str) -> None:
        super().__init__()
        torch.manual_seed(1)  # the same initial parameters in every process
        self.name = name
        self.enc = nn.Linear(3, 4 if name == "tc" else 2, dtype=DTYPE)
        self.est = {
            "gw": lambda: GWEstimator(scale=0.7, normalize_z=True, gather=True),
            "mmd": lambda: MMD(bandwidth="median", gather=True),
            "mmd_weighted": lambda: MMD(estimator="biased", gather=True),
            "tc": lambda: TotalCorrelation("mss", dataset_size=50, gather=True),
            "sinkhorn": lambda: SinkhornDivergence(
                blur=0.3, diameter=8.0, tol=None, rtol=None, gather=True
            ),
        }[name]().to(DTYPE)

    def forward(self, data: dict, part: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss and the encoder output (which keeps its gradient)."""
        u, prior = data["u"][part], data["prior"][part]
        out = self.enc(u)
        out.retain_grad()
        if self.name == "gw":
            loss = self.est(u, out)
        elif self.name == "mmd":
            loss = self.est(out, prior)
        elif self.name == "tc":
            mu, logvar = out.chunk(2, dim=-1)
            loss = self.est(mu + data["eps"][part] * (0.5 * logvar).exp(), mu, logvar)
        else:
            loss = self.est(out, prior, data["a"][part], data["b"][part])
        return loss, out


def _results(case: nn.Module, loss: torch.Tensor, out: torch.Tensor) -> dict:
    grads = {k.removeprefix("module."): p.grad.clone() for k, p in case.named_parameters()}
    return {"value": loss.detach(), "out_grad": out.grad, **grads}


def _single_process(name: str, data: dict) -> dict[str, torch.Tensor]:
    case = _Case(name)
    if name in ("mmd_weighted", "sinkhorn"):  # the global measure: the ranks' mean
        data = {**data, "a": data["a"] / WORLD, "b": data["b"] / WORLD}
    loss, out = case(data, slice(None))
    loss.backward()
    return _results(case, loss, out)


# --------------------------------------------------------------------------- the workers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(r: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)  # two processes on a shared CPU
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=r, world_size=WORLD,
        timeout=datetime.timedelta(seconds=120),
    )  # fmt: skip
    try:
        torch.save(_distributed_cases(r), f"{out_dir}/rank{r}.pt")
    finally:
        dist.destroy_process_group()


def _distributed_cases(r: int) -> dict[str, object]:
    results: dict[str, object] = {
        "helpers": (is_distributed(), world_size(), rank()),
    }
    data = _data()
    part = slice(r * LOCAL, (r + 1) * LOCAL)
    for name in ESTIMATORS:
        model = DistributedDataParallel(_Case(name))
        loss, out = model(data, part)
        loss.backward()  # DDP averages the parameter gradients over the ranks
        results[name] = _results(model, loss, out)

    # Asymmetric losses: rank s weights the gathered tensor by (s + 1) * c. With the sum
    # over ranks in the backward, rank r's gradient is sum_s (s + 1) * c[slice r]; without
    # it, only its own (r + 1) * c[slice r].
    x = torch.arange(3.0, dtype=DTYPE).add(10 * r).requires_grad_()
    c = torch.arange(1.0, 3 * WORLD + 1, dtype=DTYPE)
    gathered = gather(x)
    ((r + 1) * (gathered * c).sum()).backward()
    results["asymmetric"] = {"gathered": gathered.detach(), "grad": x.grad}

    # A non-contiguous input gathered along its last dim; an expanded (stride 0) gradient.
    base = torch.arange(12.0, dtype=DTYPE).reshape(3, 4).add(100 * r).requires_grad_()
    gathered = gather(base.mT, dim=-1)
    gathered.sum().backward()
    results["noncontiguous"] = {"gathered": gathered.detach(), "grad": base.grad}

    # The TC decomposition over the gathered codes (prior applied to the gathered z).
    z, mu, logvar = data["eps"][part], data["prior"][part], data["u"][part, :2]
    results["decomposition"] = TotalCorrelation("mws", dataset_size=50, gather=True).decompose(
        z, mu, logvar, prior_log_density=lambda t: -0.5 * t.pow(2)
    )

    # Clouds given as one tensor stay one tensor (Sinkhorn's exact self cost).
    cloud = data["u"][part]
    gx, gy, _, _ = gather_clouds(cloud, cloud)
    results["same_cloud"] = gx is gy

    # Unequal shapes: a ValueError on every rank, not a hang.
    try:
        gather(torch.zeros(LOCAL + r, 2, dtype=DTYPE))
        results["mismatch"] = None
    except ValueError as err:
        results["mismatch"] = str(err)
    return results


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    out_dir = tmp_path_factory.mktemp("distributed")
    mp.spawn(_worker, args=(_free_port(), str(out_dir)), nprocs=WORLD, join=True)
    return [torch.load(out_dir / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


# --------------------------------------------------------------------------- the tests


@pytest.mark.slow
def test_helpers_in_a_process_group(ranks):
    assert [res["helpers"] for res in ranks] == [(True, WORLD, r) for r in range(WORLD)]


@pytest.mark.slow
@pytest.mark.parametrize("name", ESTIMATORS)
def test_gathered_estimate_and_ddp_gradients_equal_one_process(ranks, name):
    expected = _single_process(name, _data())
    for r, res in enumerate(ranks):
        got = res[name]
        torch.testing.assert_close(got["value"], expected["value"], rtol=1e-10, atol=1e-12)
        params = [k for k in expected if k not in ("value", "out_grad")]
        assert sorted(params) == sorted(k for k in got if k not in ("value", "out_grad"))
        for key in params:  # after DDP's mean: the single-process parameter gradients
            torch.testing.assert_close(got[key], expected[key], rtol=1e-9, atol=1e-12,
                                       msg=lambda m, k=key: f"{name} {k}: {m}")
        # Before the mean: each rank's input gradient is WORLD x its slice's gradient.
        part = slice(r * LOCAL, (r + 1) * LOCAL)
        torch.testing.assert_close(got["out_grad"], WORLD * expected["out_grad"][part],
                                   rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_gathered_tc_decomposition_equals_one_process(ranks):
    data = _data()
    expected = TotalCorrelation("mws", dataset_size=50).decompose(
        data["eps"], data["prior"], data["u"][:, :2], prior_log_density=lambda t: -0.5 * t.pow(2)
    )
    for res in ranks:
        assert res["decomposition"].keys() == expected.keys()
        for key, value in expected.items():
            torch.testing.assert_close(res["decomposition"][key], value, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_gather_backward_sums_the_gradients_of_all_ranks(ranks):
    c = torch.arange(1.0, 3 * WORLD + 1, dtype=DTYPE)
    total_weight = sum(s + 1 for s in range(WORLD))
    for r, res in enumerate(ranks):
        got = res["asymmetric"]
        torch.testing.assert_close(
            got["gathered"], torch.cat([torch.arange(3.0, dtype=DTYPE) + 10 * s
                                        for s in range(WORLD)])
        )
        torch.testing.assert_close(got["grad"], total_weight * c[3 * r : 3 * (r + 1)])


@pytest.mark.slow
def test_gather_of_a_non_contiguous_tensor_along_the_last_dim(ranks):
    bases = [torch.arange(12.0, dtype=DTYPE).reshape(3, 4) + 100 * s for s in range(WORLD)]
    expected = torch.cat([b.mT for b in bases], dim=-1)
    for res in ranks:
        torch.testing.assert_close(res["noncontiguous"]["gathered"], expected)
        torch.testing.assert_close(res["noncontiguous"]["grad"],
                                   torch.full((3, 4), float(WORLD), dtype=DTYPE))


@pytest.mark.slow
def test_gather_clouds_keeps_one_tensor_for_one_cloud(ranks):
    assert all(res["same_cloud"] for res in ranks)


@pytest.mark.slow
def test_unequal_shapes_raise_on_every_rank(ranks):
    for res in ranks:
        assert res["mismatch"] is not None
        assert "same shape" in res["mismatch"] and "rank 1: (5, 2)" in res["mismatch"]


# --------------------------------------------------------------------------- one process


def test_without_a_process_group_gather_is_the_identity():
    assert not dist.is_initialized()
    assert (is_distributed(), world_size(), rank()) == (False, 1, 0)
    x = torch.randn(5, 3)
    assert gather(x) is x
    a = torch.full((5,), 0.2)
    assert gather_clouds(x, x + 1, a, None)[2] is a


@pytest.mark.parametrize("name", ESTIMATORS)
def test_without_a_process_group_gather_true_is_a_no_op(name):
    data, case = _data(), _Case(name)
    value, _ = case(data, slice(0, LOCAL))
    case.est.gather = False
    plain, _ = case(data, slice(0, LOCAL))
    torch.testing.assert_close(value, plain, rtol=0, atol=0)


def test_gather_option_is_validated():
    for make in (lambda: GWEstimator(gather=1), lambda: MMD(gather="yes"),
                 lambda: TotalCorrelation(dataset_size=10, gather=None),
                 lambda: SinkhornDivergence(gather=0)):  # fmt: skip
        with pytest.raises(TypeError, match="gather must be a bool"):
            make()
    with pytest.raises(TypeError, match="gather must be a bool"):
        mmd(torch.randn(4, 2), torch.randn(4, 2), gather=1)
    with pytest.raises(TypeError, match="x must be a Tensor"):
        gather([1.0, 2.0])


def test_gather_checks_the_weights_of_each_rank():
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="x_weights must sum to 1"):
        gather_clouds(x, x, torch.full((4,), 0.5), None)
