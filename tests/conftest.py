"""Shared fixtures. Golden conformance data lives in ../shared/golden beside the clone."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(os.environ.get("VX_GOLDEN_DIR", REPO.parent / "shared" / "golden"))


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    if not GOLDEN.exists():
        pytest.fail(f"golden conformance data not found at {GOLDEN} (set VX_GOLDEN_DIR)")
    return GOLDEN


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    """One intra-op thread: small streaming tensors gain nothing from a second thread, OpenMP spinning
    makes everything crawl when the machine is shared, and rounding then repeats exactly."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)
