"""Where a webhook may be sent. A receiver's URL is typed by an admin, but a URL that reaches
the product's own network (loopback, private, link-local, the cloud metadata address) would
turn deliveries into requests on the attacker's behalf; such targets are refused when the
delivery is made (the name is resolved then), unless WEBHOOK_ALLOW_PRIVATE_TARGETS is on (the
embedded development settings only, for a receiver on the same machine)."""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings


class TargetRefused(Exception):
    """The URL may not be sent to; the message says why."""


def check_url_form(url: str) -> None:
    """What can be told without the network: http(s), a host, no user info."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("The URL must start with http:// or https://.")
    if not parts.hostname:
        raise TargetRefused("The URL has no host.")
    if parts.username or parts.password:
        raise TargetRefused("The URL may not carry a user name or password.")


def check_target(url: str) -> None:
    """Refuse a URL whose host resolves to any address that is not public."""
    check_url_form(url)
    if settings.WEBHOOK_ALLOW_PRIVATE_TARGETS:
        return
    host = urlsplit(url).hostname
    port = urlsplit(url).port or (443 if url.startswith("https") else 80)
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as error:
        raise TargetRefused(f"The host {host!r} does not resolve.") from error
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global or address.is_multicast:
            raise TargetRefused(
                f"The host {host!r} resolves to {address}, a loopback, private or link-local "
                "address; deliveries there are refused (WEBHOOK_ALLOW_PRIVATE_TARGETS)."
            )
