"""Shared, session-wide fixtures: the embedded model is built once and its tokenizer loaded
once per worker; MLX's compile cache lives under $TMPDIR and is reused across runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer

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


@pytest.fixture
def strict_server(httpserver: HTTPServer) -> Iterator[HTTPServer]:
    """The loopback GitHub API, failing the test on any request no handler matched or on an
    assertion inside a handler. Opt in per module with ``pytest.mark.usefixtures``."""
    yield httpserver
    httpserver.check_assertions()
    httpserver.check_handler_errors()
