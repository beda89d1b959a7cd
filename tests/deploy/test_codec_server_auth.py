"""The codec server in Kubernetes accepts only operators' JWTs: its Deployment mounts the identity provider's
public key (the ConfigMap codec-jwt-issuer, hand-written in deploy/k8s/codec-jwt-issuer.yaml) read-only and names it
in PSP_CODEC_JWT_ISSUER_PEM, the ConfigMap platform-config gives the issuer and the audience, nothing sets
PSP_CODEC_AUTH (the local stack's unauthenticated mode), and PSP_BIND_HOST stays 0.0.0.0, on which that mode is
refused anyway.

Then pscommon.codec_server's own settings parser (authorizer_from_env, what `main()` runs before it serves) is
given the environment the pod gets (the ConfigMap and Secret as committed, then the Deployment's env), with the
issuer key written to a temporary file: it accepts them, verifies a token shaped as README.md describes, and
refuses the local mode. No network.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pscommon.codec_server import (
    LOCAL_MODE,
    ConfigError,
    Forbidden,
    JwtAuthorizer,
    Unauthenticated,
    authorizer_from_env,
    is_loopback,
    load_public_key,
)
from tests.deploy.manifests import (
    CODEC_JWT_CONFIG_MAP,
    CODEC_JWT_DIR,
    CODEC_JWT_ENV,
    CODEC_SERVER,
    CONFIG_MAP,
    K8S_DIR,
    KUSTOMIZATION,
    SECRET,
    WORKLOADS,
    block_network,
    config_data,
    fail_if,
    main_container,
    pod_spec,
    single,
)

ISSUER_PEM_KEY = CODEC_JWT_ENV["PSP_CODEC_JWT_ISSUER_PEM"]
ISSUER_PEM_PATH = f"{CODEC_JWT_DIR}/{ISSUER_PEM_KEY}"
CODEC_JWT_FILE = "codec-jwt-issuer.yaml"
CONFIG_MAP_RELOAD_ANNOTATION = "configmap.reloader.stakater.com/reload"
# What the server needs to start (pscommon/codec_server.py); the issuer and the audience come from the ConfigMap.
FROM_CONFIG_MAP = ("PSP_CODEC_JWT_ISSUER", "PSP_CODEC_JWT_AUDIENCE")

CODEC = single("Deployment", CODEC_SERVER)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    block_network(monkeypatch)


def _pod_env(dep: Any) -> dict[str, str]:
    """The environment the container gets: its envFrom ConfigMap and Secret as committed, then its own env
    (which wins), valueFrom resolved against the same two objects."""
    c = main_container(dep)
    sources: dict[tuple[str, str], dict[str, str]] = {
        ("configMap", CONFIG_MAP): config_data(),
        ("secret", SECRET): dict(single("Secret", SECRET).obj.get("stringData") or {}),
    }
    env: dict[str, str] = {}
    for source in c.get("envFrom") or []:
        if "configMapRef" in source:
            env |= sources[("configMap", source["configMapRef"]["name"])]
        elif "secretRef" in source:
            env |= sources[("secret", source["secretRef"]["name"])]
    for var in c.get("env") or []:
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        ref = var.get("valueFrom") or {}
        for kind, key in (("configMap", "configMapKeyRef"), ("secret", "secretKeyRef")):
            if key in ref:
                env[var["name"]] = sources[(kind, ref[key]["name"])][ref[key]["key"]]
    return env


def _issuer_config_map() -> dict[str, Any]:
    return single("ConfigMap", CODEC_JWT_CONFIG_MAP).obj


def _env_with_key_at(tmp_path: Path, pem: str) -> dict[str, str]:
    """The pod's environment, with the issuer key at a temporary path instead of the mount."""
    env = _pod_env(CODEC)
    assert env.get("PSP_CODEC_JWT_ISSUER_PEM") == ISSUER_PEM_PATH, env.get("PSP_CODEC_JWT_ISSUER_PEM")
    key_file = tmp_path / ISSUER_PEM_KEY
    key_file.write_text(pem, encoding="utf-8")
    return env | {"PSP_CODEC_JWT_ISSUER_PEM": str(key_file)}


def _token(key: ec.EllipticCurvePrivateKey, env: dict[str, str], *, roles: list[str] | None, exp: bool = True) -> str:
    """A token as README.md says the identity provider must issue it (iss, aud, exp, the roles claim; a dotted
    claim name is an object path, as Keycloak's realm_access.roles)."""
    now = dt.datetime.now(dt.UTC)
    claims: dict[str, Any] = {
        "iss": env["PSP_CODEC_JWT_ISSUER"],
        "aud": env["PSP_CODEC_JWT_AUDIENCE"],
        "sub": "operator-4711",
        "iat": now,
    }
    if exp:
        claims["exp"] = now + dt.timedelta(minutes=5)
    if roles is not None:
        *path, last = env.get("PSP_CODEC_JWT_ROLE_CLAIM", "roles").split(".")
        target = claims
        for part in path:
            target = target.setdefault(part, {})
        target[last] = roles
    return jwt.encode(claims, key, algorithm="ES256")


# ------------------------------------------------------------------------------------------- the manifests


def test_the_codec_server_mounts_the_issuer_key_read_only() -> None:
    problems = []
    c = main_container(CODEC)
    mounts = [m for m in c.get("volumeMounts") or [] if m.get("mountPath") == CODEC_JWT_DIR]
    volumes = {v.get("name"): v for v in pod_spec(CODEC).get("volumes") or []}
    if len(mounts) != 1:
        fail_if([f"{CODEC.ref}: {len(mounts)} volumes mounted at {CODEC_JWT_DIR}, expected one"])
    mount = mounts[0]
    if mount.get("readOnly") is not True:
        problems.append(f"{CODEC.ref}: {CODEC_JWT_DIR} is not mounted readOnly")
    if mount.get("subPath") or mount.get("subPathExpr"):
        problems.append(f"{CODEC.ref}: {CODEC_JWT_DIR} uses subPath, which the kubelet never updates")
    config_map = (volumes.get(mount.get("name")) or {}).get("configMap") or {}
    if config_map.get("name") != CODEC_JWT_CONFIG_MAP or config_map.get("optional"):
        problems.append(f"{CODEC.ref}: {CODEC_JWT_DIR} is not the (required) ConfigMap {CODEC_JWT_CONFIG_MAP}")
    items = {i.get("key"): i.get("path") for i in config_map.get("items") or []}
    if items != {ISSUER_PEM_KEY: ISSUER_PEM_KEY}:
        problems.append(f"{CODEC.ref}: the issuer volume projects {items}, expected {ISSUER_PEM_KEY} as is")
    env = {v.get("name"): v for v in c.get("env") or []}
    if (env.get("PSP_CODEC_JWT_ISSUER_PEM") or {}).get("value") != ISSUER_PEM_PATH:
        problems.append(f"{CODEC.ref}: PSP_CODEC_JWT_ISSUER_PEM is {env.get('PSP_CODEC_JWT_ISSUER_PEM')}")
    # The server reads the key at start only: with Stakater Reloader a new key restarts it by itself.
    annotation = (CODEC.obj["metadata"].get("annotations") or {}).get(CONFIG_MAP_RELOAD_ANNOTATION)
    if annotation != CODEC_JWT_CONFIG_MAP:
        problems.append(f"{CODEC.ref}: {CONFIG_MAP_RELOAD_ANNOTATION} is {annotation!r}, not {CODEC_JWT_CONFIG_MAP!r}")
    fail_if(problems)


def test_only_the_codec_server_gets_the_issuer_key() -> None:
    problems = []
    for dep in WORKLOADS:
        if dep.name == CODEC_SERVER:
            continue
        env = {v.get("name") for v in main_container(dep).get("env") or []}
        if env & set(CODEC_JWT_ENV):
            problems.append(f"{dep.ref}: sets {sorted(env & set(CODEC_JWT_ENV))}")
        names = {(v.get("configMap") or {}).get("name") for v in pod_spec(dep).get("volumes") or []}
        if CODEC_JWT_CONFIG_MAP in names:
            problems.append(f"{dep.ref}: mounts the ConfigMap {CODEC_JWT_CONFIG_MAP}")
    fail_if(problems)


def test_the_codec_server_gets_the_three_settings_and_never_the_local_mode() -> None:
    env = _pod_env(CODEC)
    problems = [
        f"{CODEC.ref}: {name} is not set from ConfigMap/{CONFIG_MAP}"
        for name in FROM_CONFIG_MAP
        if not config_data().get(name, "").strip() or env.get(name) != config_data()[name]
    ]
    if env.get("PSP_CODEC_JWT_ISSUER_PEM") != ISSUER_PEM_PATH:
        problems.append(f"{CODEC.ref}: PSP_CODEC_JWT_ISSUER_PEM is {env.get('PSP_CODEC_JWT_ISSUER_PEM')!r}")
    # Nowhere: not in the Deployment, not in the ConfigMap or the Secret every process reads.
    if "PSP_CODEC_AUTH" in env:
        problems.append(f"{CODEC.ref}: PSP_CODEC_AUTH is set ({env['PSP_CODEC_AUTH']!r}); Kubernetes verifies JWTs")
    for dep in WORKLOADS:
        if "PSP_CODEC_AUTH" in {v.get("name") for v in main_container(dep).get("env") or []}:
            problems.append(f"{dep.ref}: sets PSP_CODEC_AUTH")
    # The local mode is accepted on a loopback address only; the pod listens on every interface.
    if env.get("PSP_BIND_HOST") != "0.0.0.0" or is_loopback(env.get("PSP_BIND_HOST", "127.0.0.1")):
        problems.append(f"{CODEC.ref}: PSP_BIND_HOST is {env.get('PSP_BIND_HOST')!r}, expected '0.0.0.0'")
    fail_if(problems)


def test_the_issuer_config_map_is_an_applied_placeholder_public_key() -> None:
    cm = single("ConfigMap", CODEC_JWT_CONFIG_MAP)
    text = (K8S_DIR / cm.file).read_text(encoding="utf-8")
    pem = (cm.obj.get("data") or {}).get(ISSUER_PEM_KEY, "")
    problems = []
    if cm.file != CODEC_JWT_FILE:
        problems.append(f"{cm.ref}: expected in {CODEC_JWT_FILE}")
    if "PRIVATE KEY" in pem or not pem.startswith("-----BEGIN PUBLIC KEY-----"):
        problems.append(f"{cm.ref}: {ISSUER_PEM_KEY} must be a PEM public key (and never a private one)")
    if "replace with your identity provider's signing key" not in text.lower():
        problems.append(f"deploy/k8s/{cm.file}: does not say that its key is a placeholder to replace")
    resources = yaml.safe_load((K8S_DIR / KUSTOMIZATION).read_text(encoding="utf-8")).get("resources") or []
    if cm.file not in resources:
        problems.append(f"deploy/k8s/{KUSTOMIZATION} does not apply {cm.file}")
    fail_if(problems)


# -------------------------------------------------------------------- what the codec server makes of them


def test_the_codec_server_accepts_the_rendered_settings(tmp_path: Path) -> None:
    pem = _issuer_config_map()["data"][ISSUER_PEM_KEY]
    env = _env_with_key_at(tmp_path, pem)
    _, algorithm = load_public_key(env["PSP_CODEC_JWT_ISSUER_PEM"])
    auth = authorizer_from_env(env, env["PSP_BIND_HOST"])
    assert isinstance(auth, JwtAuthorizer), f"the codec server would run with {type(auth).__name__}"
    assert (auth.algorithm, auth.issuer, auth.audience) == (
        algorithm,
        config_data()["PSP_CODEC_JWT_ISSUER"],
        config_data()["PSP_CODEC_JWT_AUDIENCE"],
    )
    assert auth.role == config_data().get("PSP_CODEC_JWT_ROLE", "codec-decode")
    assert auth.role_claim == config_data().get("PSP_CODEC_JWT_ROLE_CLAIM", "roles")


def test_the_placeholder_key_lets_no_token_through(tmp_path: Path) -> None:
    """Forgetting to replace the placeholder locks operators out; it lets nobody in (its private half is gone)."""
    env = _env_with_key_at(tmp_path, _issuer_config_map()["data"][ISSUER_PEM_KEY])
    auth = authorizer_from_env(env, env["PSP_BIND_HOST"])
    assert isinstance(auth, JwtAuthorizer)
    token = _token(ec.generate_private_key(ec.SECP256R1()), env, roles=[auth.role])
    with pytest.raises(Unauthenticated):
        auth.authorize(f"Bearer {token}")


def test_a_token_as_the_readme_describes_is_accepted(tmp_path: Path) -> None:
    """With the carrier's key in the ConfigMap: iss, aud, exp and the role in the role claim let an operator in;
    without the role it is 403, without exp 401."""
    idp_key = ec.generate_private_key(ec.SECP256R1())
    public_pem = idp_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    env = _env_with_key_at(tmp_path, public_pem.decode())
    auth = authorizer_from_env(env, env["PSP_BIND_HOST"])
    assert isinstance(auth, JwtAuthorizer)
    auth.authorize(f"Bearer {_token(idp_key, env, roles=['operator', auth.role])}")
    with pytest.raises(Forbidden):
        auth.authorize(f"Bearer {_token(idp_key, env, roles=['operator'])}")
    with pytest.raises(Unauthenticated):
        auth.authorize(f"Bearer {_token(idp_key, env, roles=[auth.role], exp=False)}")


@pytest.mark.parametrize("with_key", [True, False], ids=["with-the-issuer-key", "without-it"])
def test_the_local_mode_is_refused_in_the_pod(tmp_path: Path, with_key: bool) -> None:
    """Even if someone added PSP_CODEC_AUTH=local-loopback-only, the server would not start (exit 2) in the pod:
    the issuer key is set too, and without it the pod's PSP_BIND_HOST is not loopback."""
    env = _env_with_key_at(tmp_path, _issuer_config_map()["data"][ISSUER_PEM_KEY]) | {"PSP_CODEC_AUTH": LOCAL_MODE}
    if not with_key:
        del env["PSP_CODEC_JWT_ISSUER_PEM"]
    with pytest.raises(ConfigError):
        authorizer_from_env(env, env["PSP_BIND_HOST"])
