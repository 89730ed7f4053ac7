"""Real servers for the scale-out tests, started and stopped by the tests themselves.

``milvus_server(folder)``: ``milvus-server`` from PyPI on a free port, its data in ``folder``;
stopped with SIGTERM to its process group and then SIGKILL (its ``milvus`` child outlives a
plain SIGTERM), so no process is left behind. ``ray_on_loopback()``: a local Ray instance
bound to 127.0.0.2 with authentication off, shut down afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerUri(str):
    """A server's URI; ``pid`` leads the server's process group."""

    pid: int


@contextlib.contextmanager
def milvus_server(folder: Path, timeout: float = 180):
    """Yields the server's URI (``http://127.0.0.1:PORT``, a ``ServerUri``)."""
    from pymilvus import MilvusClient

    binary = Path(sys.executable).parent / "milvus-server"
    if not binary.exists():
        raise RuntimeError(f"{binary} is missing: run `make install` (the scale extras install milvus)")
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    log = open(folder / "milvus.log", "w")
    server = subprocess.Popen([str(binary), "--data", str(folder / "data"), "--proxy-port", str(port),
                               "--etcd-port", str(free_port())],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = ServerUri(f"http://127.0.0.1:{port}")
    uri.pid = server.pid
    try:
        deadline = time.time() + timeout
        while True:
            try:
                MilvusClient(uri=uri, timeout=5).list_collections()
                break
            except Exception:  # noqa: BLE001 - not up yet
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError("milvus-server did not start: " + (folder / "milvus.log").read_text()[-2000:])
                time.sleep(1)
        yield uri
    finally:
        stop_group(server)
        log.close()


def stop_group(process: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM the process's group, then SIGKILL whatever is left of it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    deadline = time.time() + grace  # a killed process takes a moment to be gone
    while group_alive(process.pid) and time.time() < deadline:
        time.sleep(0.2)


def group_alive(pid: int) -> bool:
    """Whether any process of the group ``pid`` led is still running (zombies excluded)."""
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pid and fields[0] not in "ZX":  # fields: state, ppid, pgrp, ... (zombies, dead: gone)
            return True
    return False


@contextlib.contextmanager
def ray_on_loopback(cpus: int = 2):
    """A local Ray instance on 127.0.0.2 (authentication off, no dashboard); yields its address."""
    import ray

    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(num_cpus=cpus, _node_ip_address="127.0.0.2", include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
