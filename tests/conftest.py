"""Shared, session-wide fixtures: the embedded model is built once and its tokenizer loaded
once per worker; MLX's compile cache lives under $TMPDIR and is reused across runs."""

from __future__ import annotations

import pytest

from mlx_parity.cell import ModelSource
from mlx_parity.fixture import SMOKE


@pytest.fixture(scope="session")
def model_source() -> ModelSource:
    source = ModelSource(SMOKE.model_path())
    source.tokenizer()
    return source


@pytest.fixture(scope="session")
def tokenizer(model_source: ModelSource):
    return model_source.tokenizer()
