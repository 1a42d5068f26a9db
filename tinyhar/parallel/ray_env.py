"""Start or join Ray: local by default (workers sized to the cores, TensorFlow limited to its share
of threads per worker), or an existing cluster with --address / RAY_ADDRESS."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tinyhar.errors import TinyharError

INSTALL_HINT = "Ray is not installed: pip install 'tinyhar[ray]' (or pip install 'ray[tune]')"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the tinyhar package


@dataclass(frozen=True)
class Cluster:
    """Where the work runs: how many trainings at once, and each one's TensorFlow threads."""

    address: str | None  # None: a Ray started on this machine
    workers: int
    threads: int


def import_ray():
    """The ray module, or a one-line TinyharError saying how to install it."""
    try:
        import ray  # lazy: Ray is an optional extra and takes a second to import
    except ImportError:
        raise TinyharError(INSTALL_HINT) from None
    return ray


def thread_env(threads: int) -> dict[str, str]:
    """Environment that limits TensorFlow (and BLAS/OpenMP) to `threads` threads."""
    n = str(max(1, int(threads)))
    return {
        "TF_NUM_INTRAOP_THREADS": n,
        "TF_NUM_INTEROP_THREADS": n,
        "OMP_NUM_THREADS": n,
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def plan(workers: int | None, address: str | None) -> Cluster:
    """Workers and threads per worker: all cores locally unless --workers says fewer."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    cores = os.cpu_count() or 1
    if workers is not None and workers < 1:
        raise TinyharError("--workers must be at least 1")
    if address:
        return Cluster(address, workers or 0, 1)  # 0: as many as the cluster has CPUs
    n = workers or cores
    return Cluster(None, n, max(1, cores // n))


@contextmanager
def ray_session(cluster: Cluster) -> Iterator[object]:
    """ray.init() for `cluster` (local: sized to its workers); shut down afterwards if started."""
    ray = import_ray()
    env = thread_env(cluster.threads)
    if cluster.address is None:
        path = os.environ.get("PYTHONPATH", "")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), path) if p)
    started = not ray.is_initialized()
    if started:
        kwargs = {"num_cpus": cluster.workers} if cluster.address is None else {}
        ray.init(
            address=cluster.address,
            runtime_env={"env_vars": env},
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            configure_logging=True,
            **kwargs,
        )
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def describe(cluster: Cluster, ray) -> str:
    """One line saying where the work runs."""
    cpus = int(ray.cluster_resources().get("CPU", 0))
    where = f"Ray cluster {cluster.address}" if cluster.address else "local Ray"
    at_once = cluster.workers or cpus
    return f"{where}: {cpus} CPUs, {at_once} at once, {cluster.threads} TF thread(s) each"
