"""Where the service may send webhooks (SSRF guard).

The host is resolved and every address it resolves to must be public, unless it lies
in WEBHOOK_ALLOWED_NETWORKS. Checked when a job is created (a clear 400) and again
right before each delivery (DNS may have changed since).

The HTTP client resolves the host once more when it connects, and a DNS server that answers
differently the second time (DNS rebinding) would pass the check above and still reach
loopback, a private range or the metadata address. So `webhook_session()` checks the address
the socket is actually connected to (getpeername), by the same rule, before the request is
written: a refused peer is closed and raises ServiceError `webhook_address_forbidden`. Only
requests' and urllib3's documented extension points are used (HTTPAdapter.init_poolmanager,
PoolManager.pool_classes_by_scheme, the pools' ConnectionCls); HTTP itself stays urllib3's.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from voice_tts.errors import ServiceError
from voice_tts.models import DisabledWebhookUrl

_METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data"}


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_global and not address.is_multicast


def webhook_address_allowed(address: str) -> bool:
    """May a webhook go to this IP address: public, or inside WEBHOOK_ALLOWED_NETWORKS."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return _is_public(ip) or any(ip in network for network in settings.WEBHOOK_ALLOWED_NETWORKS)


def webhook_url_check(*, url: str, owner_id: int | None = None) -> None:
    """Raise ServiceError unless `url` is an http(s) URL whose host we may call."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServiceError("webhook_url_invalid", "webhook_url must be an absolute http(s) URL.")
    if parts.username or parts.password:
        raise ServiceError("webhook_url_invalid", "webhook_url must not carry credentials.")
    host = parts.hostname.rstrip(".").lower()
    if host in _METADATA_HOSTS:
        raise ServiceError("webhook_url_forbidden", f"{host} is a cloud metadata endpoint.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, ValueError, UnicodeError):
        raise ServiceError("webhook_url_unresolvable", f"The host {host!r} does not resolve.") from None
    for info in infos:
        address = info[4][0].split("%", 1)[0]
        if webhook_address_allowed(address):
            continue
        raise ServiceError(
            "webhook_url_forbidden",
            f"{host} resolves to {address}, a loopback, private, link-local or reserved address.",
        )
    if owner_id is not None and DisabledWebhookUrl.objects.filter(owner_id=owner_id, url=url).exists():
        raise ServiceError(
            "webhook_url_disabled", "This webhook URL answered 410 Gone earlier and is disabled for your account."
        )


# --- The connection actually made ---------------------------------------------------------------


def _peer_checked(connection: HTTPConnection) -> None:
    """Close and raise unless the socket's peer is an address webhooks may go to."""
    assert connection.sock is not None
    address = str(connection.sock.getpeername()[0])
    if webhook_address_allowed(address):
        return
    connection.close()
    raise ServiceError(
        "webhook_address_forbidden",
        f"{connection.host} connected to {address}, a loopback, private, link-local or reserved address "
        "(its DNS answer changed after the check); nothing was sent.",
    )


class _CheckedHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _peer_checked(self)


class _CheckedHTTPSConnection(HTTPSConnection):
    # The check follows the TLS handshake (urllib3 has no public hook between TCP and TLS): a rebound
    # host sees a ClientHello with our SNI at most, never the request; the certificate is still verified.
    def connect(self) -> None:
        super().connect()
        _peer_checked(self)


class _CheckedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class _PeerCheckingAdapter(HTTPAdapter):
    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _CheckedHTTPConnectionPool, "https": _CheckedHTTPSConnectionPool,
        }


def webhook_session() -> requests.Session:
    """A requests session whose every connection is checked by its peer address (see above).

    No proxies or .netrc from the environment (trust_env off): through a proxy the peer would be
    the proxy, and a webhook must never carry the host's credentials."""
    session = requests.Session()
    session.trust_env = False
    adapter = _PeerCheckingAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
