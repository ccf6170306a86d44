"""Shared fixtures: a tiny model directory written without training and a tiny prepared
dataset (for fast tests); one torch thread for small CPU workloads. Helper functions that
test modules import by name live in tests/helpers.py."""

from __future__ import annotations

import pytest
import torch
from helpers import write_tiny_dataset, write_untrained_model



@pytest.fixture
def tiny_model(tmp_path) -> str:
    return write_untrained_model(str(tmp_path / "model"), ["alpha", "beta", "gamma"])


@pytest.fixture
def tiny_stylegan(tmp_path) -> str:
    return write_untrained_model(str(tmp_path / "sg"), ["alpha", "beta", "gamma"], resolution=16, arch="stylegan")


@pytest.fixture
def untrained_model():
    """The :func:`write_untrained_model` factory (test modules cannot import conftest
    by name: ``tests/integration/conftest.py`` shadows it in a full run)."""
    return write_untrained_model


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> str:
    """A prepared dataset of tiny_model's styles (:func:`helpers.write_tiny_dataset`); read only."""
    return write_tiny_dataset(str(tmp_path_factory.mktemp("eval") / "ds"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small CPU workloads on a shared 2-core machine: one thread avoids OpenMP spin-waiting
    (5–10× faster under load, about as fast when idle). Use per module:
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
