"""Shared test configuration: deterministic hypothesis, one thread per xdist worker, and
the device the suite runs on.

``OTLOSS_TEST_DEVICE=cuda pytest`` runs the whole suite with CUDA as torch's default
device (tensors created without a device land there) and the ``device`` and
``generator`` fixtures on it; unset or ``cpu``, nothing changes. Tests marked
``@pytest.mark.cuda`` (or ``@cuda``) skip without a CUDA device; ``pytest -m cuda``
selects them.
"""

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

settings.register_profile(
    "otloss",
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("otloss")

#: The real datasets beside the project (see ../shared/data/README.md).
SHARED_DATA = Path(
    os.environ.get("OTLOSS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)

#: The device the suite runs on (``OTLOSS_TEST_DEVICE``, default the CPU).
TEST_DEVICE = torch.device(os.environ.get("OTLOSS_TEST_DEVICE") or "cpu")

#: Marks a test that needs CUDA: it skips without a device (`pytest_collection_modifyitems`).
cuda = pytest.mark.cuda


def pytest_configure(config: pytest.Config) -> None:
    if TEST_DEVICE.type == "cpu":
        return
    if TEST_DEVICE.type == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError(
            f"OTLOSS_TEST_DEVICE={TEST_DEVICE} but CUDA is not available to this torch "
            f"{torch.__version__}"
        )
    torch.set_default_device(TEST_DEVICE)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture
def device() -> torch.device:
    """The device the suite runs on (`TEST_DEVICE`)."""
    return TEST_DEVICE


@pytest.fixture
def generator() -> torch.Generator:
    """A seeded generator on the test device."""
    return torch.Generator(TEST_DEVICE).manual_seed(0)
