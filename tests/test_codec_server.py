"""The codec server decrypts payloads (full phone numbers) only for an operator's valid token with the codec role;
the local stack's unauthenticated mode exists on loopback only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import pathlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jwt
import pytest
from aiohttp import hdrs
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from pscommon import codec_server
from pscommon.codec import EncryptionCodec, new_key_spec, parse_keys
from pscommon.codec_server import (
    LOCAL_MODE,
    ConfigError,
    JwtAuthorizer,
    LoopbackOnly,
    authorizer_from_env,
    build_app,
)

ISSUER = "https://sso.example-carrier.cn/realms/ops"
AUDIENCE = "psp-codec"
ORIGIN = "https://temporal-ui.example-carrier.cn"
PHONE = b'"13912345678"'
SUBJECT = "operator-4711"

EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_EC_KEY = ec.generate_private_key(ec.SECP256R1())
CODEC = EncryptionCodec(parse_keys(new_key_spec("test-1")), "test-1")


def pem(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def token(key: Any = EC_KEY, algorithm: str = "ES256", **overrides: Any) -> str:
    """A token as the identity provider would issue it; an override of None leaves the claim out."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": SUBJECT,
        "iat": now,
        "exp": now + 300,
        "roles": ["operator", "codec-decode"],
    }
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm=algorithm)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], secret: bytes | None = None) -> str:
    """A token crafted by hand: alg none, or HS256 keyed with the public key (algorithm confusion)."""
    claims = jwt.decode(token(), options={"verify_signature": False})
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()) if secret else ""
    return f"{signing_input}.{signature}"


def bearer(value: str) -> dict[str, str]:
    return {hdrs.AUTHORIZATION: f"Bearer {value}", hdrs.ORIGIN: ORIGIN}


AUTHORIZER = JwtAuthorizer(key=EC_KEY.public_key(), algorithm="ES256", issuer=ISSUER, audience=AUDIENCE)


async def client_for(authorizer: codec_server.Authorizer) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(TestServer(build_app(CODEC, {ORIGIN}, authorizer)))
    await client.start_server()
    return client


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    c = await client_for(AUTHORIZER)
    yield c
    await c.close()


async def encrypted_body() -> str:
    payload = Payload(metadata={"encoding": b"json/plain"}, data=PHONE)
    return json_format.MessageToJson(Payloads(payloads=await CODEC.encode([payload])))


def decoded(text: str) -> list[Payload]:
    return list(json_format.Parse(text, Payloads()).payloads)


# ------------------------------------------------------------------------------------------ who may decode


async def test_a_good_token_decodes(client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    good = token()
    resp = await client.post("/decode", data=await encrypted_body(), headers=bearer(good))
    assert resp.status == 200, await resp.text()
    [payload] = decoded(await resp.text())
    assert payload.data == PHONE and payload.metadata["encoding"] == b"json/plain"
    assert resp.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] == ORIGIN
    assert good not in caplog.text and "13912345678" not in caplog.text and SUBJECT not in caplog.text


async def test_a_good_token_encodes(client: TestClient[Any, Any]) -> None:
    body = json_format.MessageToJson(Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=PHONE)]))
    resp = await client.post("/encode", data=body, headers=bearer(token()))
    assert resp.status == 200
    [sealed] = decoded(await resp.text())
    assert PHONE not in sealed.data
    [opened] = await CODEC.decode([sealed])
    assert opened.data == PHONE


@pytest.mark.parametrize("path", ["/decode", "/encode"])
async def test_no_token_is_401(client: TestClient[Any, Any], path: str) -> None:
    resp = await client.post(path, data=await encrypted_body(), headers={hdrs.ORIGIN: ORIGIN})
    assert resp.status == 401
    assert resp.headers[hdrs.WWW_AUTHENTICATE].startswith("Bearer")
    # The UI reads the status only if the refusal carries CORS headers too.
    assert resp.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] == ORIGIN
    assert "13912345678" not in await resp.text()


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer", "Bearer ", "Basic b3BlcmF0b3I6c2VjcmV0", f"Token {token()}", "Bearer not-a-jwt"],
)
async def test_no_bearer_token_is_401(client: TestClient[Any, Any], authorization: str) -> None:
    resp = await client.post("/decode", data=await encrypted_body(), headers={hdrs.AUTHORIZATION: authorization})
    assert resp.status == 401
    assert resp.headers[hdrs.WWW_AUTHENTICATE].startswith("Bearer")


INVALID = {
    "expired": lambda: token(exp=int(time.time()) - 120, iat=int(time.time()) - 420),
    "no exp": lambda: token(exp=None),
    "not yet valid": lambda: token(nbf=int(time.time()) + 600),
    "wrong issuer": lambda: token(iss="https://sso.example.org/realms/ops"),
    "no issuer": lambda: token(iss=None),
    "wrong audience": lambda: token(aud="temporal-ui"),
    "no audience": lambda: token(aud=None),
    "signed by another key": lambda: token(key=OTHER_EC_KEY),
    "payload altered": lambda: ".".join(
        (token().split(".")[0], token(sub="someone-else").split(".")[1], token().split(".")[2])
    ),
    "alg none": lambda: unsigned({"alg": "none", "typ": "JWT"}),
    "HS256 with the public key": lambda: unsigned({"alg": "HS256", "typ": "JWT"}, pem(EC_KEY.public_key())),
}


@pytest.mark.parametrize("case", INVALID)
async def test_an_invalid_token_is_401(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture, case: str
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = INVALID[case]()
    resp = await client.post("/decode", data=await encrypted_body(), headers=bearer(bad))
    assert resp.status == 401
    assert resp.headers[hdrs.WWW_AUTHENTICATE] == 'Bearer realm="codec", error="invalid_token"'
    assert "13912345678" not in await resp.text()
    assert "refused" in caplog.text
    assert bad not in caplog.text and SUBJECT not in caplog.text and ISSUER not in caplog.text


@pytest.mark.parametrize(
    "roles", [None, [], ["operator"], "codec-decode", {"codec-decode": True}, ["codec-decode-extra"]], ids=repr
)
@pytest.mark.parametrize("path", ["/decode", "/encode"])
async def test_a_valid_token_without_the_role_is_403(client: TestClient[Any, Any], path: str, roles: Any) -> None:
    resp = await client.post(path, data=await encrypted_body(), headers=bearer(token(roles=roles)))
    assert resp.status == 403
    assert "insufficient_scope" in resp.headers[hdrs.WWW_AUTHENTICATE]
    assert "13912345678" not in await resp.text()


async def test_preflight_needs_no_token(client: TestClient[Any, Any]) -> None:
    headers = {
        hdrs.ORIGIN: ORIGIN,
        hdrs.ACCESS_CONTROL_REQUEST_METHOD: "POST",
        hdrs.ACCESS_CONTROL_REQUEST_HEADERS: "authorization,content-type,x-namespace",
    }
    for path in ("/decode", "/encode"):
        resp = await client.options(path, headers=headers)
        assert resp.status == 200
        assert resp.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] == ORIGIN
        assert "POST" in resp.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS]
        allowed = resp.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS].split(",")
        assert {"authorization", "content-type", "x-namespace"} <= set(allowed)


async def test_another_origin_gets_no_cors_grant(client: TestClient[Any, Any]) -> None:
    resp = await client.options("/decode", headers={hdrs.ORIGIN: "https://evil.example.org"})
    assert hdrs.ACCESS_CONTROL_ALLOW_ORIGIN not in resp.headers


# ------------------------------------------------------------------------------------------ what it accepts


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"\xff\xfe\x00", b"[1]", b'{"payloads": "x"}', b'{"nope": 1}', b"[" * 50_000 + b"]" * 50_000],
    ids=["empty", "text", "not utf-8", "list", "wrong type", "unknown field", "deep"],
)
async def test_a_body_that_is_not_payloads_json_is_400(client: TestClient[Any, Any], body: bytes) -> None:
    resp = await client.post("/decode", data=body, headers=bearer(token()))
    assert resp.status == 400


async def test_payloads_that_do_not_decrypt_are_400(client: TestClient[Any, Any]) -> None:
    [sealed] = await CODEC.encode([Payload(metadata={"encoding": b"json/plain"}, data=PHONE)])
    tampered = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    unknown_key = Payload(metadata={**sealed.metadata, "encryption-key-id": b"gone"}, data=sealed.data)
    no_key_id = Payload(metadata={"encoding": sealed.metadata["encoding"]}, data=sealed.data)
    truncated = Payload(metadata=dict(sealed.metadata), data=sealed.data[:5])
    for payload in (tampered, unknown_key, no_key_id, truncated):
        body = json_format.MessageToJson(Payloads(payloads=[payload]))
        resp = await client.post("/decode", data=body, headers=bearer(token()))
        assert resp.status == 400


async def test_a_body_over_4_mib_is_refused(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/decode", data=b" " * (4 * 1024 * 1024 + 1), headers=bearer(token()))
    assert resp.status == 413


async def test_the_body_is_not_read_before_the_token_is_checked(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/decode", data=b" " * (4 * 1024 * 1024 + 1))
    assert resp.status == 401


# ------------------------------------------------------------------------------------------ configuration


@pytest.fixture
def key_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "issuer.pem"
    path.write_bytes(pem(EC_KEY.public_key()))
    return path


def jwt_env(key_file: pathlib.Path, **extra: str) -> dict[str, str]:
    return {
        "PSP_CODEC_JWT_ISSUER_PEM": str(key_file),
        "PSP_CODEC_JWT_ISSUER": ISSUER,
        "PSP_CODEC_JWT_AUDIENCE": AUDIENCE,
        **extra,
    }


def test_the_environment_configures_the_token_check(key_file: pathlib.Path) -> None:
    authorizer = authorizer_from_env(jwt_env(key_file), "0.0.0.0")
    assert isinstance(authorizer, JwtAuthorizer)
    assert (authorizer.algorithm, authorizer.issuer, authorizer.audience) == ("ES256", ISSUER, AUDIENCE)
    assert (authorizer.role, authorizer.role_claim) == ("codec-decode", "roles")
    authorizer.authorize(f"Bearer {token()}")


def test_the_role_and_its_claim_are_configurable(key_file: pathlib.Path) -> None:
    env = jwt_env(key_file, PSP_CODEC_JWT_ROLE="psp-codec", PSP_CODEC_JWT_ROLE_CLAIM="realm_access.roles")
    authorizer = authorizer_from_env(env, "0.0.0.0")
    authorizer.authorize(f"Bearer {token(roles=None, realm_access={'roles': ['psp-codec']})}")
    with pytest.raises(codec_server.Forbidden):
        authorizer.authorize(f"Bearer {token(realm_access={'roles': ['codec-decode']})}")


def test_an_rsa_key_verifies_rs256(tmp_path: pathlib.Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "rsa.pem"
    path.write_bytes(pem(private.public_key()))
    authorizer = authorizer_from_env(jwt_env(path), "0.0.0.0")
    assert isinstance(authorizer, JwtAuthorizer) and authorizer.algorithm == "RS256"
    authorizer.authorize(f"Bearer {token(key=private, algorithm='RS256')}")
    with pytest.raises(codec_server.Unauthenticated):
        authorizer.authorize(f"Bearer {token()}")  # ES256 is not what this key verifies


@pytest.mark.parametrize("kind", ["rsa-1024", "p-384", "not a key", "missing"])
def test_an_unusable_key_refuses_to_start(tmp_path: pathlib.Path, kind: str) -> None:
    path = tmp_path / "key.pem"
    if kind == "rsa-1024":
        path.write_bytes(pem(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()))
    elif kind == "p-384":
        path.write_bytes(pem(ec.generate_private_key(ec.SECP384R1()).public_key()))
    elif kind == "not a key":
        path.write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ConfigError, match="PSP_CODEC_JWT_ISSUER_PEM"):
        authorizer_from_env(jwt_env(path), "127.0.0.1")


@pytest.mark.parametrize("missing", ["PSP_CODEC_JWT_ISSUER_PEM", "PSP_CODEC_JWT_ISSUER", "PSP_CODEC_JWT_AUDIENCE"])
def test_without_the_token_settings_it_refuses_to_start(key_file: pathlib.Path, missing: str) -> None:
    env = jwt_env(key_file)
    del env[missing]
    with pytest.raises(ConfigError, match=missing):
        authorizer_from_env(env, "127.0.0.1")


def test_with_nothing_configured_it_refuses_to_start_even_on_loopback() -> None:
    with pytest.raises(ConfigError, match=f"PSP_CODEC_AUTH={LOCAL_MODE}"):
        authorizer_from_env({}, "127.0.0.1")


def test_an_unknown_mode_refuses_to_start(key_file: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="PSP_CODEC_AUTH"):
        authorizer_from_env(jwt_env(key_file, PSP_CODEC_AUTH="off"), "127.0.0.1")


# ------------------------------------------------------------------------------------------ the local stack


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
async def test_the_loopback_mode_works_on_loopback(caplog: pytest.LogCaptureFixture, host: str) -> None:
    caplog.set_level(logging.WARNING, logger=codec_server.__name__)
    authorizer = authorizer_from_env({"PSP_CODEC_AUTH": LOCAL_MODE}, host)
    assert isinstance(authorizer, LoopbackOnly)
    assert "codec server without authentication: loopback-only local stack" in caplog.text
    client = await client_for(authorizer)
    try:
        resp = await client.post("/decode", data=await encrypted_body())
        assert resp.status == 200
        [payload] = decoded(await resp.text())
        assert payload.data == PHONE
    finally:
        await client.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.20.30.40", "fe80::1", "codec-server", "localhost.evil"])
def test_the_loopback_mode_is_refused_elsewhere(host: str) -> None:
    with pytest.raises(ConfigError, match="not a loopback address"):
        authorizer_from_env({"PSP_CODEC_AUTH": LOCAL_MODE}, host)


def test_the_loopback_mode_and_a_key_do_not_mix(key_file: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="both set"):
        authorizer_from_env(jwt_env(key_file, PSP_CODEC_AUTH=LOCAL_MODE), "127.0.0.1")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    yield
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


@pytest.mark.parametrize(
    "env",
    [
        {"PSP_CODEC_AUTH": LOCAL_MODE, "PSP_BIND_HOST": "0.0.0.0"},
        {"PSP_BIND_HOST": "127.0.0.1"},
    ],
    ids=["loopback mode on 0.0.0.0", "no key"],
)
async def test_the_process_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_logging: None, env: dict[str, str]
) -> None:
    for name in ("PSP_CODEC_AUTH", "PSP_CODEC_JWT_ISSUER_PEM", "PSP_CODEC_JWT_ISSUER", "PSP_CODEC_JWT_AUDIENCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PSP_CODEC_KEYS", new_key_spec("test-1"))
    monkeypatch.setenv("PSP_CODEC_ACTIVE_KEY", "test-1")
    monkeypatch.setenv("PSP_CODEC_SERVER_PORT", "1")  # never bound: it stops before
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        await codec_server.main()
    assert stopped.value.code == 2
    [line] = [json.loads(line) for line in capsys.readouterr().err.splitlines() if "codec server" in line]
    assert line["level"] == "CRITICAL" and line["message"].startswith("codec server not started:")
