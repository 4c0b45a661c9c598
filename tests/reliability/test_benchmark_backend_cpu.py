"""The benchmarks' reading of PostgreSQL's CPU (benchmarks/_common.backend_cpu_seconds) leaves out the backends it is
told to: engine_vs_server.py and service_cpu.py leave out their own next-task lookups' pool, whose statements are
the benchmark's, not the service's."""

from __future__ import annotations

import sys

import psycopg
import pytest
from conftest import REPO
from sqlalchemy.engine import make_url

sys.path.insert(0, str(REPO / "benchmarks"))
from _common import backend_cpu_seconds, libpq_url  # noqa: E402

pytestmark = pytest.mark.postgres

BURN = "SELECT count(*) FROM generate_series(1, 4000000)"  # a few hundred ms of one backend's CPU


def test_a_backend_left_out_does_not_count_and_one_kept_in_does(postgres_url):
    name = make_url(postgres_url).database
    with psycopg.connect(libpq_url(postgres_url), autocommit=True) as burner:
        pid = burner.info.backend_pid
        before_all, before_others = (backend_cpu_seconds(postgres_url, name),
                                     backend_cpu_seconds(postgres_url, name, exclude={pid}))
        burner.execute(BURN)
        all_backends = backend_cpu_seconds(postgres_url, name) - before_all
        others = backend_cpu_seconds(postgres_url, name, exclude={pid}) - before_others
    assert all_backends >= 0.05, f"the burning backend's CPU was not read: {all_backends:.3f} s"
    assert others < all_backends / 4, f"the left-out backend still counts: {others:.3f} of {all_backends:.3f} s"
