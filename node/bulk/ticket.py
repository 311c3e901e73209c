"""Bulk tickets: a short-lived token the provider signs for one peer, handed over libp2p.

Why a ticket: the HTTP request carries no libp2p identity, but the private-data rules are
per peer ID. So the fetcher first asks the provider over ``/mycel/car-ticket/1.0.0`` (a
Noise-authenticated libp2p stream: the provider knows exactly which peer asks); the provider
answers with the URL to use, a token it signed naming that peer (``aud``), itself (``iss``),
the listener it is good for (``scope``: ``http`` or ``tls``) and an expiry at most TTL seconds
away, and for TLS the sha256 of its certificate, which the fetcher pins. The HTTP request
sends the token as ``Authorization: Bearer <base64url>``; the provider checks its own
signature, the expiry and the scope, and then serves the blocks the policy lets ``aud`` have.

The node's own fetcher now uses the ticket for the URL and the pin and proves its peer ID with
the ``libp2p-PeerID`` handshake instead (:mod:`node.bulk.peerauth`); the token stays accepted.

A token for plain HTTP can be seen on the wire, so it only ever opens the plain listener,
which serves public blocks only; the TLS token travels inside TLS. A forged, expired, foreign
or wrong-scope token is refused with 401.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

from storage import dagcbor
from storage.cid import CID
from storage.privacy.envelope import seal, signature_holds, unseal
from storage.privacy.errors import PrivacyError

PROTOCOL = "/mycel/car-ticket/1.0.0"
DOMAIN = b"mycel-car-ticket-v1:"
TTL = 60  # seconds a ticket is good for: one fetch starts well within it
SKEW = 5  # seconds of clock difference tolerated on the provider's own clock (it signed exp itself)
MAX_TOKEN = 1024
MAX_REPLY = 2048
_PEER = re.compile(r"[1-9A-HJ-NP-Za-km-z]{1,128}")
_URL = re.compile(r"https?://[\x21-\x7e]{1,240}")
Scope = Literal["http", "tls"]


class TicketError(Exception):
    """A token or ticket reply that cannot be used: ``str()`` says why, for the 401 body or the log."""


@dataclass(frozen=True, slots=True)
class Ticket:
    """What the provider handed the fetcher: where to fetch, with what, and (TLS) which certificate."""

    url: str
    token: bytes
    cert_sha256: bytes | None  # set exactly when url is https

    def encode(self) -> bytes:
        reply: dict[str, Any] = {"url": self.url, "token": self.token}
        if self.cert_sha256 is not None:
            reply["cert"] = self.cert_sha256
        return dagcbor.encode(reply)

    @classmethod
    def decode(cls, data: bytes) -> Ticket:
        """A provider's reply, checked by schema (it is a peer's bytes)."""
        reply = dagcbor.decode_message(data, MAX_REPLY, "a ticket reply", TicketError)
        if set(reply) - {"url", "token", "cert"}:
            raise TicketError("a ticket reply is a map of url, token and (for https) cert")
        url, token, cert = reply.get("url"), reply.get("token"), reply.get("cert")
        if not isinstance(url, str) or not _URL.fullmatch(url):
            raise TicketError("the ticket's url must be an http(s) URL of at most 247 characters")
        if not isinstance(token, bytes) or not 0 < len(token) <= MAX_TOKEN:
            raise TicketError(f"the ticket's token must be 1 to {MAX_TOKEN} bytes")
        tls = url.startswith("https://")
        if tls != (cert is not None) or (cert is not None and (not isinstance(cert, bytes) or len(cert) != 32)):
            raise TicketError("an https ticket carries the certificate's sha256 (32 bytes), a plain one none")
        return cls(url, token, cert)


def request_for(root: CID) -> bytes:
    """The fetcher's ticket request: the root decides which listener (private data: TLS)."""
    return dagcbor.encode({"root": root})


def root_of_request(data: bytes) -> CID | None:
    """The root a ticket request names, or None for a malformed one."""
    try:
        message = dagcbor.decode_message(data, 256, "a ticket request", ValueError)
    except ValueError:
        return None
    if set(message) != {"root"} or not isinstance(message["root"], CID):
        return None
    return message["root"]


def issue(sign: Any, issuer: str, audience: str, scope: Scope, now: float | None = None) -> bytes:
    """A token for ``audience`` signed by the provider (``sign``: its identity's Ed25519 signer)."""
    expires = int(now if now is not None else time.time()) + TTL
    return seal(sign, DOMAIN, {"aud": audience, "exp": expires, "iss": issuer, "scope": scope})


def authorization(token: bytes) -> str:
    return "Bearer " + base64.urlsafe_b64encode(token).decode().rstrip("=")


def check(header: str | None, issuer: str, scope: Scope, now: float | None = None) -> str:
    """The peer ID an ``Authorization`` header's token was issued to; raises :class:`TicketError`."""
    if not header or not header.startswith("Bearer "):
        raise TicketError("send the ticket as Authorization: Bearer <token> (ask the provider over libp2p)")
    text = header[len("Bearer ") :].strip()
    if len(text) > MAX_TOKEN * 2:
        raise TicketError("the token is too long")
    try:
        token = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        payload, signature = unseal(token, MAX_TOKEN)
    except (binascii.Error, ValueError, PrivacyError) as exc:
        raise TicketError(f"the token is malformed: {exc}") from None
    if set(payload) != {"aud", "exp", "iss", "scope"}:
        raise TicketError("the token's payload is not a bulk ticket")
    audience, expires, issued_by, granted = payload["aud"], payload["exp"], payload["iss"], payload["scope"]
    if not isinstance(audience, str) or not _PEER.fullmatch(audience):
        raise TicketError("the token's audience is not a peer ID")
    if not isinstance(expires, int) or isinstance(expires, bool):
        raise TicketError("the token's expiry is not an integer")
    if issued_by != issuer:
        raise TicketError("the token was issued by another node")
    if not signature_holds(issuer, DOMAIN, payload, signature):
        raise TicketError("the token's signature is not this node's")
    moment = now if now is not None else time.time()
    if expires < moment:
        raise TicketError("the token has expired: ask for a new ticket")
    if expires > moment + TTL + SKEW:
        raise TicketError("the token's expiry is further away than this node ever issues")
    if granted != scope:
        raise TicketError(f"the token is for the {granted} listener, not {scope}")
    return audience
