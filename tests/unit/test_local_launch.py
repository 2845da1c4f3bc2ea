"""Commands and environments of local cluster processes."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

from jhub_gateway import process_env
from jhub_gateway.hub_service.backends.local import launch
from jhub_gateway.hub_service.cluster_config import ClusterConfig

ROUTES = "DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES"


def test_schedulers_skip_the_worker_dashboard_proxy_route():
    env = launch.base_env(ClusterConfig(), {}, parent={"PATH": "/usr/bin"})
    routes = ast.literal_eval(env[ROUTES])
    assert "distributed.http.proxy" not in routes
    assert "distributed.http.health" in routes and "distributed.http.scheduler.json" in routes
    # distributed reads it as its route list
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import dask.config, distributed; "
            "print(dask.config.get('distributed.scheduler.http.routes'))",
        ],
        env={**os.environ, ROUTES: env[ROUTES]},
        capture_output=True,
        text=True,
        check=True,
    )
    assert ast.literal_eval(out.stdout.strip()) == routes


def test_every_other_default_route_is_kept():
    # the default list minus the proxy, so a new distributed route would show up here
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import dask.config, distributed; "
            "print(dask.config.get('distributed.scheduler.http.routes'))",
        ],
        env={k: v for k, v in os.environ.items() if k != ROUTES},
        capture_output=True,
        text=True,
        check=True,
    )
    defaults = ast.literal_eval(out.stdout.strip())
    assert [r for r in defaults if r != "distributed.http.proxy"] == list(
        process_env.SCHEDULER_HTTP_ROUTES
    )


def test_a_clusters_environment_can_bring_the_route_back():
    config = ClusterConfig(environment={ROUTES: "['distributed.http.proxy']"})
    env = launch.base_env(config, {}, parent={})
    assert env[ROUTES] == "['distributed.http.proxy']"


def test_workers_without_a_nanny_get_its_environment_below_the_clusters():
    config = ClusterConfig(environment={"OMP_NUM_THREADS": "4"})
    base = launch.base_env(config, {}, parent={})
    env = launch.worker_env(config, base, nanny=False)
    assert env["PYTHONHASHSEED"] == "6640" and env["MALLOC_TRIM_THRESHOLD_"] == "65536"
    assert env["OMP_NUM_THREADS"] == "4"  # the cluster's own value wins
    assert "PYTHONHASHSEED" not in launch.worker_env(config, base, nanny=True)
