"""Where the service may send webhooks (SSRF guard).

The host is resolved and every address it resolves to must be public, unless it lies
in WEBHOOK_ALLOWED_NETWORKS. Checked when a job is created (a clear 400) and again
right before each delivery (DNS may have changed since).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

from voice_tts.errors import ServiceError
from voice_tts.models import DisabledWebhookUrl

_METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data"}


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


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
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if _is_public(address):
            continue
        if any(address in network for network in settings.WEBHOOK_ALLOWED_NETWORKS):
            continue
        raise ServiceError(
            "webhook_url_forbidden",
            f"{host} resolves to {address}, a loopback, private, link-local or reserved address.",
        )
    if owner_id is not None and DisabledWebhookUrl.objects.filter(owner_id=owner_id, url=url).exists():
        raise ServiceError(
            "webhook_url_disabled", "This webhook URL answered 410 Gone earlier and is disabled for your account."
        )
