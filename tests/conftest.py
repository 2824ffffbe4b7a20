"""Shared test configuration: deterministic hypothesis, one thread per xdist worker."""

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

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)
