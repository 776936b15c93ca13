"""How naslab starts or joins Ray.

A **local** Ray instance (no address) listens on 127.0.0.1 only: its GCS, raylet,
object manager, workers, driver, agents, metrics export and (when asked for) the
dashboard bind to the loopback address, so nothing on the network can reach them.
Ray's token authentication stays as Ray sets it: Ray 2.5x and later turn it on for a
new local instance unless ``RAY_AUTH_MODE`` says otherwise (naslab never sets it).

**Joining a cluster** (``address``: ``"auto"``, ``"host:port"`` or
``"ray://host:port"``) is the only case where Ray listens beyond localhost: the
cluster's nodes do, as ``ray start`` set them up. naslab first checks that something
answers at the address (within ``connect_timeout`` seconds) so that a wrong address
is a one-line error instead of Ray's endless reconnection; ``ray://`` needs
``ray[client]`` and the dashboard ``ray[default]`` (both in ``naslab[cluster]``).

``RAY_ADDRESS``, as in Ray, names the cluster to join when no address is given.
"""

from __future__ import annotations

import importlib
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from naslab.core.errors import ConfigError

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "INSTALL_HINT",
    "LOOPBACK",
    "check_address",
    "cluster_address",
    "join_cluster",
    "require_client",
    "require_dashboard",
    "start_local",
]

#: The only address a local Ray instance listens on.
LOOPBACK = "127.0.0.1"
#: Seconds to wait for a cluster's address to answer before giving up.
DEFAULT_CONNECT_TIMEOUT = 30.0
#: How to install what ``ray://`` addresses and the dashboard need.
INSTALL_HINT = 'pip install "naslab[cluster]"'
#: Ray reads it when it is imported and when it picks a node's IP address: "0" keeps
#: a local instance's node address at 127.0.0.1 (Ray otherwise swaps a loopback
#: address for the machine's external one, and then listens on every interface).
_CLUSTER_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\s:/\[\]]+)):(?P<port>\d+)$")


def _split(address: str) -> tuple[str, int]:
    """``(host, port)`` of ``host:port`` (or ``[v6]:port``); ConfigError otherwise."""
    match = _HOST_PORT.match(address)
    port = int(match.group("port")) if match else 0
    if match is None or not 1 <= port <= 65535:
        raise ConfigError(
            f"ray address {address!r} is not 'auto', 'ray://host:port' or 'host:port' "
            "(port 1-65535)")
    return match.group("v6") or match.group("host"), port


def check_address(address: str) -> str:
    """Refuse a malformed cluster address, or a ``ray://`` one without ``ray[client]``;
    return it unchanged."""
    if not isinstance(address, str):
        raise ConfigError(f"ray address must be a string, got {type(address).__name__}")
    if address == "auto":
        return address
    if address.startswith("ray://"):
        _split(address[len("ray://"):])
        require_client()
    else:
        _split(address)
    return address


def cluster_address(address: str | None) -> str | None:
    """The cluster to join: ``address``, else ``RAY_ADDRESS`` (as Ray reads it), else
    None (start a local instance)."""
    if address is None:
        address = os.environ.get("RAY_ADDRESS") or None
    return None if address is None else check_address(address)


def _missing(module: str) -> str | None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return getattr(exc, "name", None) or module
    return None


def require_client() -> None:
    """Refuse ``ray://`` addresses when Ray's client (``ray[client]``) is missing."""
    missing = _missing("grpc")
    if missing:
        raise ConfigError(
            f"ray:// addresses need Ray's client (ray[client]; {missing!r} is missing): "
            f"{INSTALL_HINT}, or join with 'auto' or 'host:port' from a cluster node")


def require_dashboard() -> None:
    """Refuse the dashboard when its packages (``ray[default]``) are missing."""
    missing = _missing("ray.dashboard.optional_deps")
    if missing:
        raise ConfigError(
            f"Ray's dashboard needs ray[default] ({missing!r} is missing): {INSTALL_HINT}")


@contextmanager
def _environment(values: dict[str, str | None]) -> Iterator[None]:
    """Set (a value) or unset (None) environment variables for the block."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start_local(num_cpus: int | None = None, *, dashboard: bool = False,
                temp_dir: str | None = None) -> Any:
    """Start a local Ray instance that listens on 127.0.0.1 only (and its dashboard
    there too, with ``dashboard``); return ``ray.init``'s context."""
    if dashboard:
        require_dashboard()
    import ray
    from ray._private import ray_constants

    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False  # this process imported Ray already
    try:
        # the variable is inherited by the GCS, raylet, agents and workers; without
        # RAY_ADDRESS, ray.init starts an instance instead of joining one
        with _environment({_CLUSTER_ENV: "0", "RAY_ADDRESS": None}):
            context = ray.init(num_cpus=num_cpus, include_dashboard=dashboard,
                               dashboard_host=LOOPBACK, _node_ip_address=LOOPBACK,
                               _temp_dir=temp_dir, log_to_driver=False)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
    node_ip = context.address_info.get("node_ip_address")
    if node_ip != LOOPBACK:  # a Ray version that ignores the setting: never run open
        ray.shutdown()
        raise ConfigError(
            f"the local Ray instance would listen on {node_ip}, not {LOOPBACK} only; this "
            f"Ray version ({ray.__version__}) is not supported for local searches")
    return context


def _probe(host: str, port: int, timeout: float, address: str) -> None:
    """Refuse an address where nothing accepts a TCP connection within ``timeout``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except TimeoutError:
        why = f"no answer within {timeout:g} s"
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
    raise ConfigError(
        f"no Ray cluster answers at {address} ({why}); start one with `ray start --head`, "
        "or check the address (auto, host:port of the head's GCS, ray://host:10001)")


def _resolve_auto() -> str:
    """The address ``auto`` stands for: ``RAY_ADDRESS``, else the cluster that
    ``ray start`` last started on this machine."""
    env = os.environ.get("RAY_ADDRESS")
    if env and env != "auto":
        return check_address(env)
    from ray._private.services import canonicalize_bootstrap_address_or_die

    try:
        return str(canonicalize_bootstrap_address_or_die("auto"))
    except Exception:
        raise ConfigError(
            "--ray-address auto found no running Ray cluster on this machine (none was "
            "started with `ray start --head` here, and RAY_ADDRESS is unset); start one, "
            "or give the head's address host:port") from None


def join_cluster(address: str, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> Any:
    """Connect to an existing cluster; one-line ConfigError when it cannot."""
    import ray

    target = _resolve_auto() if address == "auto" else check_address(address)
    host, port = _split(target[len("ray://"):] if target.startswith("ray://") else target)
    _probe(host, port, connect_timeout, target)
    try:
        with _environment({"RAY_ADDRESS": target}):  # Ray prefers RAY_ADDRESS to its argument
            return ray.init(address=target, log_to_driver=False)
    except Exception as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(f"could not join the Ray cluster at {target}: {text[:300]}") from None
