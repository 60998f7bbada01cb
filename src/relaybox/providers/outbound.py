"""The one guard for outbound HTTP to user-supplied URLs (SSRF protection).

Workspaces configure webhook URLs, so without a check any API key could make Relaybox call
cloud metadata endpoints, the admin port of a sidecar or anything else on the private network.
``OutboundGuard.check_url`` refuses URLs whose scheme is not http(s) or whose host resolves to
a private, loopback, link-local, multicast, reserved or unspecified address, unless the host or
the address is on the operator's allow list. ``OutboundGuard.request`` checks the URL, sends
one request without following redirects, and reads at most ``max_response_bytes`` of the body.

Known gap: the address is resolved here and again by the HTTP client when it connects, so a
DNS server that answers differently the second time (DNS rebinding) can slip past the check.
Closing that needs pinning the checked address into the connection; it is accepted for now.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from relaybox.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})


class UnresolvableHost(ValidationError):
    """The URL's host name could not be resolved."""


@dataclass(frozen=True)
class OutboundResponse:
    """A response whose body was read up to the caller's cap."""

    status_code: int
    headers: httpx.Headers
    body: bytes
    #: True when the server sent more than ``max_response_bytes`` and the rest was not read.
    truncated: bool


def _unwrap(ip: IPAddress) -> IPAddress:
    """Return the IPv4 address behind an IPv4-mapped IPv6 one (::ffff:10.0.0.1 is 10.0.0.1)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _tunnelled(ip: IPAddress) -> IPAddress | None:
    """The IPv4 address a 6to4 or Teredo address carries, if any."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip.teredo is not None:
            return ip.teredo[1]
    return None


def _classify(ip: IPAddress) -> str | None:
    # Order matters only for the message: the most specific description wins.
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("non-global", not ip.is_global),
    )
    return next((reason for reason, hit in checks if hit), None)


def _non_public_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` must not be reached from user-supplied URLs, or None if it is public."""
    ip = _unwrap(ip)
    # A tunnel address must be public both as itself and for the IPv4 host it reaches.
    tunnelled = _tunnelled(ip)
    return _classify(ip) or (_classify(tunnelled) if tunnelled is not None else None)


def _parse_allow(entries: Sequence[str]) -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    networks: list[IPNetwork] = []
    hosts: set[str] = set()
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(_normalise_host(entry))
    return tuple(networks), frozenset(hosts)


def _normalise_host(host: str) -> str:
    # DNS names are case-insensitive and "example.com." is the same host as "example.com".
    return host.strip().lower().rstrip(".")


class OutboundGuard:
    """Refuses outbound HTTP to non-public addresses unless the operator allow-listed them.

    ``allow`` entries are IP addresses, CIDR networks or host names. A host name entry matches
    the URL's host exactly (no wildcard); an IP or CIDR entry matches the resolved addresses.
    """

    def __init__(self, allow: Sequence[str] = ()) -> None:
        self._allow_networks, self._allow_hosts = _parse_allow(allow)

    def _ip_allowed(self, ip: IPAddress) -> bool:
        candidates = {ip, _unwrap(ip)}
        return any(c in net for c in candidates for net in self._allow_networks)

    async def _resolve(self, host: str, port: int) -> set[IPAddress]:
        try:
            return {ipaddress.ip_address(host)}
        except ValueError:
            pass
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError) as exc:
            raise UnresolvableHost(f"cannot resolve host {host!r}: {exc}") from exc
        addresses: set[IPAddress] = set()
        for _family, _type, _proto, _canon, sockaddr in infos:
            # Scope ids ("fe80::1%eth0") are not part of the address for classification.
            addresses.add(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
        if not addresses:
            raise UnresolvableHost(f"host {host!r} resolved to no addresses")
        return addresses

    async def check_url(self, url: str) -> None:
        """Raise ValidationError unless ``url`` may be requested.

        Raises:
            UnresolvableHost: the host does not resolve (a ValidationError; may be transient).
            ValidationError: bad scheme or URL, or the host resolves to a non-public address.
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValidationError(f"invalid URL {url!r}: {exc}") from exc
        scheme = parts.scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            raise ValidationError(
                f"URL scheme {scheme or '(none)'!r} is not allowed; use http or https"
            )
        host = _normalise_host(parts.hostname or "")
        if not host:
            raise ValidationError(f"URL {url!r} has no host")
        await self.check_host(host, port if port is not None else 443 if scheme == "https" else 80)

    async def check_host(self, host: str, port: int) -> None:
        """Raise ValidationError unless ``host`` may be reached (any protocol, e.g. SMTP).

        Raises:
            UnresolvableHost: the host does not resolve.
            ValidationError: the host resolves to a non-public address not allow-listed.
        """
        host = _normalise_host(host)
        if host in self._allow_hosts:
            return
        for ip in sorted(await self._resolve(host, port), key=str):
            reason = _non_public_reason(ip)
            if reason is not None and not self._ip_allowed(ip):
                raise ValidationError(
                    f"refusing to send to {host!r}: it resolves to {ip}, a {reason} address; "
                    "add the host or address to the outbound allow list to permit it"
                )

    async def request(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        content: bytes,
        time_limit: float,
        max_response_bytes: int,
    ) -> OutboundResponse:
        """Check ``url``, send one request and read at most ``max_response_bytes`` of the body.

        Redirects are not followed (a redirect could point past the guard); the 3xx response is
        returned as is. ``time_limit`` (seconds) bounds the whole exchange, not just each socket
        operation, so a server that drips bytes cannot hold a worker. A body over the cap is cut
        off and flagged ``truncated`` rather than treated as an error: the status code already
        says whether the receiver accepted the message, and failing a delivered message would
        make the engine report or retry it wrongly.

        Raises:
            ValidationError: from ``check_url``.
            TimeoutError: the exchange took longer than ``time_limit``.
            httpx.HTTPError: transport failures (connection refused, protocol errors, ...).
        """
        await self.check_url(url)
        send_headers = {"Accept-Encoding": "identity", **headers}
        body = bytearray()
        truncated = False
        async with (
            asyncio.timeout(time_limit),
            client.stream(
                method,
                url,
                headers=send_headers,
                content=content,
                timeout=time_limit,
                follow_redirects=False,
            ) as response,
        ):
            async for chunk in response.aiter_bytes():
                room = max_response_bytes - len(body)
                if len(chunk) > room:
                    body += chunk[:room]
                    truncated = True
                    break
                body += chunk
        return OutboundResponse(
            status_code=response.status_code,
            headers=response.headers,
            body=bytes(body),
            truncated=truncated,
        )
