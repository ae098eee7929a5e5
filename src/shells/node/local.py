"""The node of this machine, built once: the host's pool and network, handed to each backend."""

from __future__ import annotations

import logging

from ..runtime.backend import Backend
from ..runtime.container.backend import ContainerBackend, host_pool
from ..runtime.microvm.backend import MicrovmBackend
from ..runtime.network.dataplane import HostNetwork
from ..runtime.volumes import PoolVolumes
from ..runtime.wasm.backend import WasmBackend
from ..runtime.wasm.compiler import ContainerCompiler
from ..settings import Settings
from . import Node

log = logging.getLogger(__name__)


def local_node(settings: Settings) -> Node:
    """Every isolation class this host can run, over one pool and one network."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    pool = host_pool(settings)
    network = HostNetwork(settings)
    container = ContainerBackend(settings, pool=pool, network=network)
    backends: list[Backend] = [container, WasmBackend(settings, pool, ContainerCompiler(container))]
    missing = MicrovmBackend.available()
    if missing is None:
        backends.append(MicrovmBackend(settings, container))
    else:
        log.warning("no microvm class on this host: %s", missing)
    return Node(settings.node_name, backends, network, PoolVolumes(pool))
