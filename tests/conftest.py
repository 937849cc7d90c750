"""Shared pytest setup: Hypothesis profiles (pick with HYPOTHESIS_PROFILE or the flag), and a
real redis-server for the shared-state tests."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import socket
import subprocess
import time
import uuid
import warnings
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, Verbosity, settings

if TYPE_CHECKING:
    from collections.abc import Iterator

# dev: quick enough to run on every save; finds most scheduling bugs.
settings.register_profile("dev", max_examples=60, deadline=None)
# ci: more examples and no deadline, since CI machines are shared and slower.
settings.register_profile(
    "ci",
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
# debug: few examples, verbose output, for reading a shrunk counterexample.
settings.register_profile("debug", max_examples=10, deadline=None, verbosity=Verbosity.verbose)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


class RedisServer:
    """A real `redis-server` on 127.0.0.1 (a free port, no persistence) that a test may kill
    and start again on the same port."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed; run `make pytest` (it installs it)")
        self._process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.01)
        pytest.fail(f"redis-server did not listen on port {self.port} within 10 s")

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the whole session, killed at the end; tests keep apart by using
    their own key prefix (`redis_prefix`)."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_redis_server() -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that kill and restart it."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()
    # coredis leaves the memory streams of a connection that failed to open (while the
    # server was down) for the garbage collector, which warns; collect them here, where
    # that known leak is expected, rather than in whichever test runs next.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Unclosed <MemoryObject", ResourceWarning)
        gc.collect()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses."""
    return f"test-{uuid.uuid4().hex[:12]}"
