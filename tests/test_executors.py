"""Executors: the contract (:mod:`naslab.testing.executors`) on the in-process executor
and on a pool of two Ray workers (the session's Ray instance)."""

from __future__ import annotations

import time

import pytest

from naslab.testing.executors import ExecutorContract
from naslab.workers.executor import InProcessExecutor
from naslab.workers.ray_executor import RayExecutor


class TestInProcessExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self):
        return InProcessExecutor()


class TestRayExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self, ray_cluster):
        executor = RayExecutor(workers=2)
        yield executor
        executor.shutdown()

    def assert_released(self, executor):
        """The pool's actors are gone: the cluster has every CPU free again (Ray frees
        a killed actor's resources within moments)."""
        import ray

        assert ray.is_initialized()  # a cluster the executor did not start stays up
        total = ray.cluster_resources()["CPU"]
        deadline = time.monotonic() + 10.0
        while ray.available_resources().get("CPU", 0.0) < total:
            assert time.monotonic() < deadline, ray.available_resources()
            time.sleep(0.05)
