"""Shared LLVC fixtures: the golden random-init checkpoint (official format) and its input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from vxlib.llvc import load_model


@pytest.fixture(scope="session")
def llvc_golden(golden_dir):
    return golden_dir / "llvc"


@pytest.fixture(scope="session")
def golden_model(llvc_golden):
    model, sr = load_model(llvc_golden / "G_random_seed0_outscaled.pth", llvc_golden / "config.json")
    assert sr == 16000
    return model


@pytest.fixture(scope="session")
def golden_input(llvc_golden) -> np.ndarray:
    x, sr = sf.read(llvc_golden / "input_2s_16k.wav", dtype="float32")
    assert sr == 16000 and x.shape == (32000,)
    return x


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Streaming steps are tiny: with 2 intra-op threads on a shared 2-core machine, OpenMP
    barriers spin against the other jobs and a test runs many times slower. One thread."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
