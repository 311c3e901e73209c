"""Peer ID Authentication over HTTP: the ``libp2p-PeerID`` scheme, both sides, for the bulk path.

What the scheme is (libp2p's "Peer ID Authentication over HTTP", restated here):

* Headers carry ``libp2p-PeerID`` followed by RFC 9110 auth-params, ``name="value"`` joined by
  commas: the client's ``Authorization``, the server's ``WWW-Authenticate`` (with a 401) and
  ``Authentication-Info`` (with the answer that authenticated the client). Byte values are
  base64url (RFC 4648 section 5); this module writes the padding and reads it optional.
* Parameters: ``challenge-client`` / ``challenge-server`` (random strings each side makes for
  the other to sign), ``public-key`` (the signer's libp2p ``PublicKey`` protobuf, the key its peer
  ID is made of), ``sig``, ``opaque`` (server state the client hands back verbatim), ``bearer``
  (a token the server gives the authenticated client for later requests) and ``expires``
  (advisory RFC 3339 expiry of the bearer).
* A signature covers the bytes ``libp2p-PeerID`` followed by, for each signed parameter in
  alphabetical order of its name, the uvarint length of ``name=value`` and then ``name=value``
  itself; strings as UTF-8, byte values (public keys) raw. The client signs
  ``challenge-client``, ``hostname`` and ``server-public-key``; the server signs
  ``challenge-server``, ``client-public-key`` and ``hostname``. ``hostname`` is the name the
  client addressed: both sides use the request's ``Host`` value (what go-libp2p does: host,
  plus ``:port`` when the port is not the scheme's default). The spec's words are "the server
  name used in TLS", which has no port, so this server also accepts a client signature over
  the ``Host`` without its port, and then signs its own answer over that same form.
* Server-initiated: a request without credentials gets 401 and ``challenge-client``,
  ``public-key``, ``opaque``; the client answers ``public-key``, ``opaque``,
  ``challenge-server``, ``sig`` and is served, with ``Authentication-Info: sig, bearer``
  (the server's signature, which the client checks before it trusts the answer).
* Client-initiated: the client sends ``challenge-server`` and ``public-key`` first; the 401
  already carries the server's ``sig`` (checked before the client signs anything) with
  ``challenge-client``, ``public-key`` and ``opaque``; the client answers ``opaque`` and ``sig``
  and is served with ``Authentication-Info: bearer``.
* Later requests send ``Authorization: libp2p-PeerID bearer="..."``; a refused bearer gets a
  401 with a fresh challenge, and the client authenticates again.

How this node holds the server side (the spec leaves opaque and bearer to the server): both
are ``HMAC-SHA256(key, state) || state``, the state canonical DAG-CBOR, the key random per
process (a restart voids every token and challenge, which costs a client one handshake). An
opaque names its challenge, the hostname, the listener (TLS or plain) and its creation time,
and for the client-initiated flow the client's key; it is good for :data:`CHALLENGE_TTL`
seconds and for one successful answer (a replayed answer is refused). A bearer names the peer
ID, the hostname and the listener, so a bearer won over plain HTTP never opens the TLS
listener, and lasts :data:`BEARER_TTL` seconds. Only Ed25519 keys are accepted (the only key
type of this network); any other ``PublicKey`` type is refused by name.

Hostnames and TLS: the spec binds the signatures to the hostname and wants the server to check
it against the TLS server name and to authenticate over TLS. This server checks the ``Host``
against the names it serves (its advertised and bound host), and against the TLS SNI when the
client sent one (clients send none for an IP address). The spec's protection against a relay
in the middle is the TLS certificate; the bulk path has no Web PKI, so the fetcher pins the
provider's certificate by the sha256 it learned over the Noise-authenticated libp2p
connection (:mod:`node.bulk.ticket`). Over plain HTTP the handshake is accepted too, but that
listener serves public blocks only, so a peer ID proven there never unlocks private data.

Every refusal says why (:class:`PeerAuthError`), and every header is bounded to
:data:`MAX_HEADER` bytes (the spec's suggested limit) before it is parsed.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import hashlib
import hmac
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import nacl.exceptions
import nacl.signing
import yarl

from storage import dagcbor
from storage.peerid import peer_id_for, public_key_protobuf
from storage.varint import encode_uvarint

SCHEME = "libp2p-PeerID"
PROTOCOL_ID = "/http-peer-id-auth/1.0.0"  # the spec's id for its authentication-only endpoint
MAX_HEADER = 2048
CHALLENGE_BYTES = 32
MIN_CHALLENGE = 32  # characters of a peer's challenge we agree to sign (32 random bytes are 44)
CHALLENGE_TTL = 60  # seconds an opaque (a challenge) is good for
BEARER_TTL = 600  # seconds a bearer token is good for
SKEW = 5
MAX_HOSTNAME = 255
MAX_PENDING = 1 << 16  # answered challenges remembered (to refuse replays) until they expire
_MAC = 32
_KEY_TYPES = {0: "RSA", 1: "Ed25519", 2: "Secp256k1", 3: "ECDSA"}
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SCHEME_AT = re.compile(r"(?:^|[\s,])" + re.escape(SCHEME) + r"(?=[\s]|$)", re.IGNORECASE)
_B64 = re.compile(r"[A-Za-z0-9_\-]*={0,2}")
Signer = Callable[[bytes], bytes]


class PeerAuthError(Exception):
    """A header or step of the handshake that cannot be accepted: ``str()`` says why."""


# --- encoding ------------------------------------------------------------------------------


def b64encode(data: bytes) -> str:
    """base64url with padding (what go-libp2p writes and expects)."""
    return base64.urlsafe_b64encode(data).decode("ascii")


def b64decode(text: str, what: str) -> bytes:
    """base64url, padding optional; anything else raises :class:`PeerAuthError` naming ``what``."""
    if not _B64.fullmatch(text):
        raise PeerAuthError(f"{what} is not base64url")
    try:
        return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        raise PeerAuthError(f"{what} is not base64url") from None


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_params(params: Mapping[str, str]) -> str:
    """``libp2p-PeerID name="value", ...`` in the given order (empty values are left out)."""
    return SCHEME + " " + ", ".join(f"{name}={_quote(value)}" for name, value in params.items() if value)


def parse_params(header: str | None) -> dict[str, str]:
    """The ``libp2p-PeerID`` auth-params of a header value (RFC 9110 auth-param syntax).

    Other schemes in the same header (a ``WWW-Authenticate`` may list several challenges) are
    skipped; a header without this scheme gives ``{}``. Names are lower-cased (the grammar
    makes them case-insensitive); a repeated name, a bad quoted string or a header longer than
    :data:`MAX_HEADER` raises :class:`PeerAuthError`."""
    if header is None:
        return {}
    if len(header.encode("utf-8", "surrogateescape")) > MAX_HEADER:
        raise PeerAuthError(f"the authentication header is longer than {MAX_HEADER} bytes")
    found = _SCHEME_AT.search(header)
    if found is None:
        return {}
    params: dict[str, str] = {}
    pos, end = found.end(), len(header)
    while True:
        at = _skip(header, pos, " \t")
        name = _TOKEN.match(header, at)
        if name is None:
            if _skip(header, at, " \t,") < end and not params:
                raise PeerAuthError(f"the authentication header is malformed at character {at}")
            break
        equals = _skip(header, name.end(), " \t")
        if not header.startswith("=", equals):
            break  # a token with no "=": the next scheme begins
        value, pos = _value(header, _skip(header, equals + 1, " \t"))
        key = name.group().lower()
        if key in params:
            raise PeerAuthError(f"the parameter {key} appears twice")
        params[key] = value
        after = _skip(header, pos, " \t")
        if after >= end:
            break
        if header[after] != ",":
            raise PeerAuthError(f"the authentication header is malformed at character {after}")
        pos = _skip(header, after, " \t,")
    return params


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _value(text: str, pos: int) -> tuple[str, int]:
    if text.startswith('"', pos):
        out: list[str] = []
        pos += 1
        while pos < len(text):
            char = text[pos]
            if char == "\\" and pos + 1 < len(text):
                out.append(text[pos + 1])
                pos += 2
            elif char == '"':
                return "".join(out), pos + 1
            else:
                out.append(char)
                pos += 1
        raise PeerAuthError("a quoted parameter value is not closed")
    match = _TOKEN.match(text, pos)
    if match is None:
        raise PeerAuthError(f"a parameter value is missing at character {pos}")
    return match.group(), match.end()


# --- signing -------------------------------------------------------------------------------


def data_to_sign(params: Mapping[str, str | bytes]) -> bytes:
    """``libp2p-PeerID`` then each ``name=value``, sorted by name, each after its uvarint length."""
    out = bytearray(SCHEME.encode())
    for name in sorted(params):
        value = params[name]
        part = name.encode() + b"=" + (value.encode() if isinstance(value, str) else value)
        out += encode_uvarint(len(part)) + part
    return bytes(out)


def sign_params(sign: Signer, params: Mapping[str, str | bytes]) -> bytes:
    return sign(data_to_sign(params))


def ed25519_key(public_key: bytes) -> bytes:
    """The raw Ed25519 key inside a libp2p ``PublicKey`` protobuf; other key types are refused."""
    if len(public_key) < 2 or public_key[0] != 0x08:
        raise PeerAuthError("the public key is not a libp2p PublicKey protobuf")
    key_type = public_key[1]
    if key_type != 1:
        name = _KEY_TYPES.get(key_type, f"type {key_type}")
        raise PeerAuthError(f"only Ed25519 keys are accepted, this one is {name}")
    if len(public_key) != 36 or public_key[2:4] != b"\x12\x20":
        raise PeerAuthError("the Ed25519 public key is not a 32-byte key in canonical protobuf form")
    return public_key[4:]


def verify_params(public_key: bytes, params: Mapping[str, str | bytes], signature: bytes) -> bool:
    """True when ``signature`` is the holder of ``public_key`` (protobuf) signing ``params``."""
    try:
        nacl.signing.VerifyKey(ed25519_key(public_key)).verify(data_to_sign(params), signature)
    except (PeerAuthError, nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError, TypeError):
        return False
    return True


def new_challenge() -> str:
    return b64encode(os.urandom(CHALLENGE_BYTES))


def rfc3339(moment: float) -> str:
    return datetime.datetime.fromtimestamp(int(moment), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hostname_forms(hostname: str) -> list[str]:
    """The ``Host`` as sent, then without its port: a client may sign either (see the module doc)."""
    bare = hostname[: hostname.rindex("]") + 1] if hostname.startswith("[") and "]" in hostname else hostname
    if not hostname.startswith("[") and hostname.count(":") == 1:
        bare = hostname.split(":", 1)[0]
    return [hostname] if bare == hostname else [hostname, bare]


def split_host(hostname: str) -> str:
    """The host part of a ``Host`` value (no port, no IPv6 brackets), lower-cased."""
    if hostname.startswith("["):
        return hostname[1 : hostname.find("]")].lower() if "]" in hostname else ""
    return hostname.rsplit(":", 1)[0].lower() if hostname.count(":") == 1 else hostname.lower()


# --- the server ----------------------------------------------------------------------------


@dataclass
class Verdict:
    """What the server makes of one request: a peer (authenticated) or a 401 with headers."""

    peer: str | None
    headers: dict[str, str] = field(default_factory=dict)
    reason: str = ""  # why not authenticated (empty while the handshake is merely under way)


class PeerAuthServer:
    """The server side: one instance per listener set, holding the MAC key and answered challenges."""

    def __init__(self, signer: Signer, public_key: bytes, hostnames: Callable[[], set[str]]) -> None:
        self._sign = signer
        self.public_key = public_key_protobuf(public_key)  # the protobuf form the spec exchanges
        self.peer_id = peer_id_for(public_key)
        self._hostnames = hostnames  # the hosts (lower case, no port) this server answers for
        self._key = os.urandom(32)
        self._answered: dict[str, float] = {}
        self.clock: Callable[[], float] = time.time  # a test may move it

    def _seal(self, state: dict[str, object]) -> str:
        body = dagcbor.encode(state)
        return b64encode(hmac.new(self._key, body, hashlib.sha256).digest() + body)

    def _open(self, text: str, what: str) -> dict[str, object]:
        blob = b64decode(text, what)
        mac, body = blob[:_MAC], blob[_MAC:]
        if len(blob) <= _MAC or not hmac.compare_digest(mac, hmac.new(self._key, body, hashlib.sha256).digest()):
            raise PeerAuthError(f"the {what} was not made by this server (or it restarted since)")
        try:
            return dagcbor.decode_message(body, MAX_HEADER, f"the {what}", PeerAuthError)
        except PeerAuthError:
            raise PeerAuthError(f"the {what} is malformed") from None

    def challenge(self, hostname: str, tls: bool, reason: str, now: float | None = None) -> Verdict:
        """A 401 that starts the server-initiated handshake."""
        moment = now if now is not None else self.clock()
        challenge = new_challenge()
        opaque = self._seal({"k": "opaque", "c": challenge, "h": hostname, "s": tls, "t": int(moment)})
        header = encode_params(
            {"challenge-client": challenge, "public-key": b64encode(self.public_key), "opaque": opaque}
        )
        return Verdict(None, {"WWW-Authenticate": header}, reason)

    def authenticate(
        self, header: str | None, hostname: str, tls: bool, sni: str | None = None, now: float | None = None
    ) -> Verdict:
        """The peer a request's ``Authorization`` proves, or the 401 (with headers) to answer."""
        moment = now if now is not None else self.clock()
        if not hostname or len(hostname) > MAX_HOSTNAME or split_host(hostname) not in self._hostnames():
            return Verdict(None, {}, f"this server does not answer for the host {hostname[:80]!r}")
        if sni is not None and split_host(hostname) != sni.lower():
            return Verdict(None, {}, f"the Host {hostname[:80]!r} is not the TLS server name {sni[:80]!r}")
        try:
            params = parse_params(header)
            if not params:
                return self.challenge(hostname, tls, f"authenticate with {SCHEME}", moment)
            if "sig" in params and "opaque" in params:
                return self._answer(params, hostname, tls, moment)
            if "bearer" in params:
                return Verdict(self._bearer(params["bearer"], hostname, tls, moment))
            if "challenge-server" in params and "public-key" in params:
                return self._client_initiated(params, hostname, tls, moment)
            raise PeerAuthError("the parameters are neither a bearer, a signed answer nor a challenge")
        except PeerAuthError as exc:
            return self.challenge(hostname, tls, str(exc), moment)

    def _bearer(self, text: str, hostname: str, tls: bool, moment: float) -> str:
        state = self._open(text, "bearer token")
        if state.get("k") != "bearer" or not isinstance(state.get("p"), str) or not isinstance(state.get("t"), int):
            raise PeerAuthError("the bearer token is not a bearer token")
        created = state["t"]
        assert isinstance(created, int)
        if moment > created + BEARER_TTL:
            raise PeerAuthError("the bearer token has expired: authenticate again")
        if state.get("h") != hostname:
            raise PeerAuthError("the bearer token was issued for another hostname")
        if state.get("s") is not tls:
            raise PeerAuthError(f"the bearer token is for the {'TLS' if state.get('s') else 'plain'} listener")
        return str(state["p"])

    def _client_initiated(self, params: dict[str, str], hostname: str, tls: bool, moment: float) -> Verdict:
        client_key = b64decode(params["public-key"], "public-key")
        ed25519_key(client_key)
        theirs = params["challenge-server"]
        if len(theirs) < MIN_CHALLENGE:
            raise PeerAuthError(f"challenge-server must be at least {MIN_CHALLENGE} characters")
        signature = sign_params(
            self._sign, {"challenge-server": theirs, "client-public-key": client_key, "hostname": hostname}
        )
        challenge = new_challenge()
        state = {"k": "opaque", "c": challenge, "h": hostname, "s": tls, "t": int(moment), "pk": client_key}
        header = encode_params(
            {
                "challenge-client": challenge,
                "public-key": b64encode(self.public_key),
                "sig": b64encode(signature),
                "opaque": self._seal(state),
            }
        )
        return Verdict(None, {"WWW-Authenticate": header})

    def _answer(self, params: dict[str, str], hostname: str, tls: bool, moment: float) -> Verdict:
        state = self._open(params["opaque"], "opaque")
        challenge, created = state.get("c"), state.get("t")
        if state.get("k") != "opaque" or not isinstance(challenge, str) or not isinstance(created, int):
            raise PeerAuthError("the opaque is not a challenge of this server")
        if moment > created + CHALLENGE_TTL:
            raise PeerAuthError("the challenge has expired: start the handshake again")
        if created > moment + SKEW:
            raise PeerAuthError("the challenge is from the future")
        if state.get("h") != hostname:
            raise PeerAuthError("the challenge was made for another hostname")
        if state.get("s") is not tls:
            raise PeerAuthError("the challenge was made on the other listener")
        if challenge in self._answered:
            raise PeerAuthError("the challenge was already answered: a replay is refused")
        client_initiated = isinstance(state.get("pk"), bytes)
        if client_initiated:
            client_key = state["pk"]
            assert isinstance(client_key, bytes)
        elif "public-key" in params:
            client_key = b64decode(params["public-key"], "public-key")
        else:
            raise PeerAuthError("the answer carries no public-key")
        ed25519_key(client_key)
        signature = b64decode(params["sig"], "sig")
        named = next(
            (
                name
                for name in _hostname_forms(hostname)
                if verify_params(
                    client_key,
                    {"challenge-client": challenge, "hostname": name, "server-public-key": self.public_key},
                    signature,
                )
            ),
            None,
        )
        if named is None:
            raise PeerAuthError("the signature does not verify (key, challenge, hostname or server key differ)")
        info: dict[str, str] = {}
        if not client_initiated:
            theirs = params.get("challenge-server", "")
            if len(theirs) < MIN_CHALLENGE:
                raise PeerAuthError(f"challenge-server must be at least {MIN_CHALLENGE} characters")
            info["sig"] = b64encode(
                sign_params(
                    self._sign, {"challenge-server": theirs, "client-public-key": client_key, "hostname": named}
                )
            )
        self._remember(challenge, created + CHALLENGE_TTL, moment)
        peer = peer_id_for(ed25519_key(client_key))
        info["bearer"] = self._seal({"k": "bearer", "p": peer, "h": hostname, "s": tls, "t": int(moment)})
        info["expires"] = rfc3339(int(moment) + BEARER_TTL)
        return Verdict(peer, {"Authentication-Info": encode_params(info)})

    def _remember(self, challenge: str, until: float, moment: float) -> None:
        if len(self._answered) >= MAX_PENDING // 2:
            self._answered = {c: t for c, t in self._answered.items() if t >= moment}
        if len(self._answered) >= MAX_PENDING:
            raise PeerAuthError("too many handshakes in flight: retry in a minute")
        self._answered[challenge] = until


# --- the client ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerProof:
    """What the client checks of a server: the key it presented and its signature over our challenge."""

    public_key: bytes
    peer_id: str


def server_proof(params: Mapping[str, str], challenge: str, client_key: bytes, hostname: str) -> ServerProof:
    """The server's identity from its ``public-key`` and ``sig`` over ``challenge``; raises if it fails."""
    if "public-key" not in params or "sig" not in params:
        raise PeerAuthError("the server did not sign our challenge")
    server_key = b64decode(params["public-key"], "the server's public-key")
    ed25519_key(server_key)
    signed: dict[str, str | bytes] = {
        "challenge-server": challenge,
        "client-public-key": client_key,
        "hostname": hostname,
    }
    if not verify_params(server_key, signed, b64decode(params["sig"], "the server's sig")):
        raise PeerAuthError("the server's signature does not verify")
    return ServerProof(server_key, peer_id_for(ed25519_key(server_key)))


def client_answer(
    sign: Signer, client_key: bytes, params: Mapping[str, str], hostname: str, server_key: bytes
) -> dict[str, str]:
    """The signed answer to a server's ``challenge-client`` (the caller adds what its flow needs)."""
    challenge = params.get("challenge-client", "")
    if len(challenge) < MIN_CHALLENGE or "opaque" not in params:
        raise PeerAuthError("the server's challenge lacks challenge-client or opaque")
    signature = sign_params(
        sign, {"challenge-client": challenge, "hostname": hostname, "server-public-key": server_key}
    )
    return {"opaque": params["opaque"], "sig": b64encode(signature)}


class PeerAuthClient:
    """The client side over aiohttp: bearer if it has one, else the client-initiated handshake.

    A refused bearer is followed by the server-initiated handshake the 401 starts; a server
    that ignores our challenge and sends its own is answered the same way. Bearers are kept
    per (expected peer, scheme and host) until they expire or the server refuses them."""

    MAX_BEARERS = 1024

    def __init__(self, signer: Signer, public_key: bytes) -> None:
        self._sign = signer
        self.public_key = public_key_protobuf(public_key)
        self._bearers: dict[tuple[str, str], tuple[str, float]] = {}

    def has_bearer(self, peer: str, url: str) -> bool:
        return self._key(peer, url) in self._bearers

    def _key(self, peer: str, url: str) -> tuple[str, str]:
        target = yarl.URL(url)
        return peer, f"{target.scheme}://{host_header(target)}"

    async def get(
        self, session: aiohttp.ClientSession, url: str, peer: str, headers: Mapping[str, str], **options: Any
    ) -> aiohttp.ClientResponse:
        """GET ``url`` as this peer, the server proven to be ``peer``; the caller releases the response.

        A non-401 answer to a request that carried no proof of the server (a bearer, or a
        server that served the first request) is returned as it is; the caller decides what an
        unproven server may give it. Raises :class:`PeerAuthError` when the server's proof fails."""
        hostname = host_header(yarl.URL(url))
        base = {**headers, "Host": hostname}
        key = self._key(peer, url)
        cached = self._bearers.get(key)
        if cached is not None and cached[1] > time.time():
            response = await session.get(url, headers={**base, "Authorization": cached[0]}, **options)
            if response.status != 401:
                return response
            del self._bearers[key]
            return await self._server_initiated(session, url, base, response, peer, key, options)
        self._bearers.pop(key, None)
        mine = new_challenge()
        opening = encode_params({"challenge-server": mine, "public-key": b64encode(self.public_key)})
        response = await session.get(url, headers={**base, "Authorization": opening}, **options)
        if response.status != 401:
            return response
        params = await _challenge_of(response)
        if "sig" not in params:  # the server starts its own handshake instead
            return await self._server_initiated(session, url, base, response, peer, key, options)
        await _drop(response)
        proof = server_proof(params, mine, self.public_key, hostname)
        _expect(proof, peer)
        answer = client_answer(self._sign, self.public_key, params, hostname, proof.public_key)
        response = await session.get(url, headers={**base, "Authorization": encode_params(answer)}, **options)
        self._keep(key, response)
        return response

    async def _server_initiated(
        self,
        session: aiohttp.ClientSession,
        url: str,
        base: dict[str, str],
        refused: aiohttp.ClientResponse,
        peer: str,
        key: tuple[str, str],
        options: dict[str, Any],
    ) -> aiohttp.ClientResponse:
        params = await _challenge_of(refused)
        if "challenge-client" not in params:
            return refused  # a 401 with no challenge of this scheme: nothing to answer
        await _drop(refused)
        if "public-key" not in params:
            raise PeerAuthError("the server's challenge does not name its public-key")
        server_key = b64decode(params["public-key"], "the server's public-key")
        _expect(ServerProof(server_key, peer_id_for(ed25519_key(server_key))), peer)
        hostname = base["Host"]
        mine = new_challenge()
        signed = client_answer(self._sign, self.public_key, params, hostname, server_key)
        answer = {"public-key": b64encode(self.public_key), "opaque": signed["opaque"], "challenge-server": mine}
        answer["sig"] = signed["sig"]
        response = await session.get(url, headers={**base, "Authorization": encode_params(answer)}, **options)
        if response.status == 401:
            return response
        try:
            info = parse_params(response.headers.get("Authentication-Info"))
            server_proof({"public-key": params["public-key"], **info}, mine, self.public_key, hostname)
        except PeerAuthError:
            await _drop(response)
            raise
        self._keep(key, response)
        return response

    def _keep(self, key: tuple[str, str], response: aiohttp.ClientResponse) -> None:
        try:
            info = parse_params(response.headers.get("Authentication-Info"))
        except PeerAuthError:
            return  # served, but no usable bearer: the next request authenticates again
        bearer = info.get("bearer")
        if not bearer or response.status == 401:
            return
        until = time.time() + BEARER_TTL - SKEW
        with contextlib.suppress(ValueError):
            until = min(until, datetime.datetime.fromisoformat(info.get("expires", "")).timestamp() - SKEW)
        if len(self._bearers) >= self.MAX_BEARERS:
            self._bearers.pop(next(iter(self._bearers)))
        self._bearers[key] = (encode_params({"bearer": bearer}), until)


async def _challenge_of(response: aiohttp.ClientResponse) -> dict[str, str]:
    """A 401's ``WWW-Authenticate`` params; a malformed one releases the response and raises."""
    try:
        return parse_params(response.headers.get("WWW-Authenticate"))
    except PeerAuthError:
        await _drop(response)
        raise


async def _drop(response: aiohttp.ClientResponse) -> None:
    """Done with a 401: read its small body (so the connection is reused) and release it."""
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        await response.content.read(4096)
    response.release()


def _expect(proof: ServerProof, peer: str) -> None:
    if proof.peer_id != peer:
        raise PeerAuthError(f"the server is {proof.peer_id}, not the provider {peer}")


def host_header(url: yarl.URL) -> str:
    """The ``Host`` value for ``url`` (what both sides sign as ``hostname``): host[:port]."""
    host = url.raw_host or ""
    if ":" in host:
        host = f"[{host}]"
    return host if url.is_default_port() or url.port is None else f"{host}:{url.port}"
