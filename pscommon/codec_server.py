"""Codec server for the Temporal UI: lets authorised operators read encrypted payloads.

Same shape as the temporalio samples' encryption codec server: POST /encode and /decode with Payloads as JSON,
CORS for the UI's origin. Decoded payloads hold full phone numbers, so every POST needs an operator's bearer
token: a JWT from the operators' identity provider, signed with the configured key, carrying the codec role.

Settings (environment):
  PSP_CODEC_JWT_ISSUER_PEM   path of the issuer's PEM public key: RSA (RS256) or EC P-256 (ES256)
  PSP_CODEC_JWT_ISSUER       the expected `iss`
  PSP_CODEC_JWT_AUDIENCE     the expected `aud`
  PSP_CODEC_JWT_ROLE_CLAIM   the claim listing the operator's roles (default `roles`; a dotted path such as
                             `realm_access.roles` reaches into an object)
  PSP_CODEC_JWT_ROLE         the role both routes require (default `codec-decode`)
  PSP_CODEC_AUTH             `jwt` (default) or `local-loopback-only`: no authentication, for the embedded local
                             stack, accepted only when PSP_BIND_HOST is a loopback address
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import pathlib
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from aiohttp import hdrs, web
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload, Payloads

from pscommon.codec import EncryptionCodec, from_settings
from pscommon.config import settings
from pscommon.telemetry import setup_logging

log = logging.getLogger(__name__)

LOCAL_MODE = "local-loopback-only"
DEFAULT_ROLE = "codec-decode"
DEFAULT_ROLE_CLAIM = "roles"
# A page of the UI's history is far below this; the limit keeps an unauthenticated caller from making the
# server buffer large bodies (aiohttp answers 413 above it).
MAX_BODY = 4 * 1024 * 1024
ALLOWED_HEADERS = "content-type,x-namespace,authorization"

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


class ConfigError(Exception):
    """The server must not start as configured."""


class Unauthenticated(Exception):
    """No valid token: 401. The message says why, without anything taken from the token."""


class Forbidden(Exception):
    """A valid token without the role: 403."""


class Authorizer(Protocol):
    def authorize(self, authorization: str | None) -> None:
        """Raises Unauthenticated or Forbidden unless the Authorization header lets the caller use the codec."""


@dataclass(frozen=True)
class JwtAuthorizer:
    key: PublicKey
    algorithm: str
    issuer: str
    audience: str
    role: str = DEFAULT_ROLE
    role_claim: str = DEFAULT_ROLE_CLAIM
    # Clock skew between the identity provider and this pod.
    leeway_s: float = 30.0

    def authorize(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("no bearer token")
        try:
            claims = jwt.decode(
                token,
                self.key,
                # Fixed by the key, never taken from the token's header (RFC 8725 2.1).
                algorithms=[self.algorithm],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as e:
            raise Unauthenticated(type(e).__name__) from None
        roles = _claim(claims, self.role_claim)
        if not isinstance(roles, list) or self.role not in roles:
            raise Forbidden(f"no {self.role} role")


class LoopbackOnly:
    """The embedded local stack has no identity provider; authorizer_from_env allows this on loopback only."""

    def authorize(self, authorization: str | None) -> None:
        return None


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def load_public_key(path: str) -> tuple[PublicKey, str]:
    """The issuer's key and the one algorithm it verifies."""
    try:
        key = serialization.load_pem_public_key(pathlib.Path(path).read_bytes())
    except (OSError, ValueError) as e:
        raise ConfigError(f"PSP_CODEC_JWT_ISSUER_PEM={path!r} is not a readable PEM public key: {e}") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ConfigError(f"PSP_CODEC_JWT_ISSUER_PEM: an RSA key of {key.key_size} bits is too short")
        return key, "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key, "ES256"
    raise ConfigError("PSP_CODEC_JWT_ISSUER_PEM must be an RSA (RS256) or EC P-256 (ES256) public key")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        # What the name resolves to is what the server binds.
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except OSError:
            return False
        return bool(infos) and all(ipaddress.ip_address(str(info[4][0])).is_loopback for info in infos)
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def authorizer_from_env(env: Mapping[str, str], bind_host: str) -> Authorizer:
    mode = env.get("PSP_CODEC_AUTH", "").strip() or "jwt"
    key_path = env.get("PSP_CODEC_JWT_ISSUER_PEM", "").strip()
    if mode == LOCAL_MODE:
        if key_path:
            raise ConfigError(f"PSP_CODEC_AUTH={LOCAL_MODE} and PSP_CODEC_JWT_ISSUER_PEM are both set: choose one")
        if not is_loopback(bind_host):
            raise ConfigError(
                f"PSP_CODEC_AUTH={LOCAL_MODE} but PSP_BIND_HOST={bind_host!r} is not a loopback address: "
                "refusing to serve decrypted payloads without authentication"
            )
        log.warning("codec server without authentication: loopback-only local stack (bound to %s)", bind_host)
        return LoopbackOnly()
    if mode != "jwt":
        raise ConfigError(f"PSP_CODEC_AUTH must be 'jwt' or {LOCAL_MODE!r}, not {mode!r}")
    required = ("PSP_CODEC_JWT_ISSUER_PEM", "PSP_CODEC_JWT_ISSUER", "PSP_CODEC_JWT_AUDIENCE")
    missing = [name for name in required if not env.get(name, "").strip()]
    if missing:
        raise ConfigError(
            "the codec server decrypts personal data and accepts only operators' tokens: set "
            + ", ".join(missing)
            + f" (the embedded local stack, on loopback only, sets PSP_CODEC_AUTH={LOCAL_MODE} instead)"
        )
    key, algorithm = load_public_key(key_path)
    return JwtAuthorizer(
        key=key,
        algorithm=algorithm,
        issuer=env["PSP_CODEC_JWT_ISSUER"].strip(),
        audience=env["PSP_CODEC_JWT_AUDIENCE"].strip(),
        role=env.get("PSP_CODEC_JWT_ROLE", "").strip() or DEFAULT_ROLE,
        role_claim=env.get("PSP_CODEC_JWT_ROLE_CLAIM", "").strip() or DEFAULT_ROLE_CLAIM,
    )


def build_app(codec: EncryptionCodec, allowed_origins: set[str], authorizer: Authorizer) -> web.Application:
    """Both routes need the role: /decode shows personal data, and /encode (the UI encodes what an operator
    sends in a signal or update) is only ever used by the same operators; open, it would be an encryption
    oracle for the platform's key and a way to make the server work on large bodies without credentials."""

    def cors(req: web.Request, resp: web.Response) -> web.Response:
        # On every answer, errors included, so that the UI can read a 401 or 403 rather than a CORS failure.
        resp.headers[hdrs.VARY] = hdrs.ORIGIN
        origin = req.headers.get(hdrs.ORIGIN, "")
        if origin in allowed_origins:
            resp.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            resp.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = "POST"
            resp.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = ALLOWED_HEADERS
        return resp

    def refuse(req: web.Request, status: int, text: str, challenge: str | None = None) -> web.Response:
        resp = web.Response(status=status, text=text)
        if challenge is not None:
            resp.headers[hdrs.WWW_AUTHENTICATE] = challenge
        return cors(req, resp)

    async def options(req: web.Request) -> web.Response:
        # Preflight: browsers send no Authorization header on it.
        return cors(req, web.Response())

    async def apply(fn: Callable[[Sequence[Payload]], Awaitable[list[Payload]]], req: web.Request) -> web.Response:
        try:
            authorizer.authorize(req.headers.get(hdrs.AUTHORIZATION))
        except Unauthenticated as e:
            log.warning("codec %s refused: %s", req.path, e)
            challenge = 'Bearer realm="codec"'
            if req.headers.get(hdrs.AUTHORIZATION):
                challenge += ', error="invalid_token"'
            return refuse(req, 401, "a valid operator token is required", challenge)
        except Forbidden as e:
            log.warning("codec %s refused: %s", req.path, e)
            return refuse(
                req, 403, "the token lacks the codec role", 'Bearer realm="codec", error="insufficient_scope"'
            )
        try:
            body = await req.read()
        except web.HTTPRequestEntityTooLarge:
            return refuse(req, 413, f"the body is larger than {MAX_BODY} bytes")
        try:
            payloads = json_format.Parse(body, Payloads())
        except (json_format.ParseError, ValueError):
            log.info("codec %s: the body is not Payloads JSON", req.path)
            return refuse(req, 400, "the body is not Payloads JSON")
        try:
            result = await fn(payloads.payloads)
        except (ValueError, KeyError, InvalidTag, DecodeError) as e:
            log.info("codec %s: payloads not transformed (%s)", req.path, type(e).__name__)
            return refuse(req, 400, "the payloads cannot be transformed")
        body_out = json_format.MessageToJson(Payloads(payloads=result))
        return cors(req, web.Response(content_type="application/json", text=body_out))

    async def encode(req: web.Request) -> web.Response:
        return await apply(codec.encode, req)

    async def decode(req: web.Request) -> web.Response:
        return await apply(codec.decode, req)

    app = web.Application(client_max_size=MAX_BODY)
    app.add_routes(
        [
            web.post("/encode", encode),
            web.post("/decode", decode),
            web.options("/encode", options),
            web.options("/decode", options),
        ]
    )
    return app


async def main() -> None:
    setup_logging("codec-server")
    cfg = settings()
    host = os.environ.get("PSP_BIND_HOST", "127.0.0.1")
    try:
        authorizer = authorizer_from_env(os.environ, host)
    except ConfigError as e:
        log.critical("codec server not started: %s", e)
        raise SystemExit(2) from None
    origins = set(os.environ.get("PSP_CODEC_CORS_ORIGINS", f"{cfg.temporal_ui_url},http://localhost:8233").split(","))
    runner = web.AppRunner(build_app(from_settings(cfg.codec_keys, cfg.codec_active_key), origins, authorizer))
    await runner.setup()
    await web.TCPSite(runner, host, cfg.codec_server_port).start()
    log.info("codec server on %s port %d", host, cfg.codec_server_port)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
