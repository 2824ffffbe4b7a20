"""Shared geometry: distances, the safe sqrt and kernels."""

import pytest
import torch

from otloss.ops import (
    KERNELS,
    imq_kernel,
    median_sqdist,
    multiscale_kernel,
    pairwise_distances,
    rbf_kernel,
    safe_sqrt,
    sqdist,
)


def _brute(x, y):
    return ((x[..., :, None, :] - y[..., None, :, :]) ** 2).sum(-1)


@pytest.mark.parametrize("shape", [(9, 4), (3, 7, 5)])
def test_sqdist_matches_brute_force_for_self_and_cross_distances(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g, dtype=torch.float64) + 100.0  # far from the origin
    y = torch.randn(*shape[:-2], 6, shape[-1], generator=g, dtype=torch.float64) + 100.0
    torch.testing.assert_close(sqdist(x), _brute(x, x))
    torch.testing.assert_close(sqdist(x, y), _brute(x, y))
    assert (sqdist(x).diagonal(dim1=-2, dim2=-1) == 0).all()


def test_self_sqdist_gradients_match_autograd_to_second_order():
    x = torch.randn(3, 6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sqdist, (x,))
    assert torch.autograd.gradgradcheck(sqdist, (x[0].detach().requires_grad_(True),))
    w = torch.randn(3, 6, 6, dtype=torch.float64)
    (ours,) = torch.autograd.grad(sqdist(x), x, w)
    (brute,) = torch.autograd.grad(_brute(x, x), x, w * ~torch.eye(6, dtype=torch.bool))
    torch.testing.assert_close(ours, brute)


def test_distances_have_finite_gradients_where_points_coincide():
    x = torch.zeros(5, 3, requires_grad=True)
    y = torch.zeros(4, 3, requires_grad=True)
    (pairwise_distances(x).sum() + pairwise_distances(x, y).sum()).backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()
    t = torch.tensor([0.0, 4.0], requires_grad=True)
    safe_sqrt(t).sum().backward()
    assert t.grad.tolist() == [0.0, 0.25]


def test_kernels_and_multiscale_sum_from_one_distance_matrix():
    d2 = torch.tensor([[0.0, 1.0], [4.0, 9.0]], dtype=torch.float64)
    torch.testing.assert_close(imq_kernel(d2, 2.0), 2.0 / (2.0 + d2))
    torch.testing.assert_close(rbf_kernel(d2, 2.0), torch.exp(-d2 / 2.0))
    torch.testing.assert_close(KERNELS["laplacian"](d2, 2.0), torch.exp(-d2.sqrt() / 2.0))
    torch.testing.assert_close(KERNELS["energy"](d2, 2.0), -d2.sqrt())
    scales = (0.5, 1.0, 3.0)
    expected = sum(imq_kernel(d2, s * 2.0) for s in scales)
    torch.testing.assert_close(multiscale_kernel(d2, "imq", 2.0, scales), expected)


def test_median_sqdist_is_the_median_of_distinct_pairs():
    x = torch.tensor([[0.0], [1.0]])
    y = torch.tensor([[3.0]])
    # pairs: (0,1) -> 1, (0,3) -> 9, (1,3) -> 4
    assert median_sqdist(x, y).item() == 4.0
