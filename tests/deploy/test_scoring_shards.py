"""Scoring's line shards in Kubernetes (deploy/k8s/scoring.yaml, rendered by deploy/k8s/render.py).

Lines fall into PARTITIONS partitions; scoring runs as N shards, shard i owning the partitions p with p mod N == i
(services/scoring/partitions.py), each told N by PSP_SCORING_SHARDS, every shard's address by
PSP_SCORING_SHARD_ADDRS (in shard order) and its own index by its pod's HOSTNAME (pscommon/config.py: pod
scoring-<i> is shard i). So: a StatefulSet named scoring (stable pod names), N replicas and N in the setting, one
address per pod in ordinal order under the headless Service that gives the pods their names (and publishes them
before they are ready), a disruption budget of one pod, and, run through the service's own settings code, every
pod gets a distinct shard, listens on the container's port, and together they own every partition once.
The certificate side (its names cover these hosts, a real handshake under them) is in test_certificates.py and
test_mtls_probe.py; the network policy (shards admit each other) in test_k8s_manifests.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pscommon.config import Settings
from services.scoring import server as scoring_server
from services.scoring.partitions import PARTITIONS, ShardMap
from services.scoring.shards import Shards
from tests.deploy.manifests import (
    CONFIG_MAP,
    GRPC_SERVICES,
    NAMESPACE,
    SECRET,
    SHARDED,
    block_network,
    config_data,
    container_port,
    fail_if,
    ids,
    main_container,
    of_kind,
    selects,
    single,
)
from tests.deploy.render_loader import render

NAME = "scoring"
SHARDING = SHARDED[NAME]
PORT = GRPC_SERVICES[NAME][1]
STS = single("StatefulSet", NAME)
POD_LABELS: dict[str, str] = STS.obj["spec"]["template"]["metadata"].get("labels") or {}


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    block_network(monkeypatch)


def _replicas() -> int:
    replicas = STS.obj["spec"].get("replicas")
    assert isinstance(replicas, int), f"{STS.ref}: replicas {replicas!r} is not a number"
    return replicas


def _inline_env() -> dict[str, str]:
    return {v["name"]: str(v["value"]) for v in main_container(STS).get("env") or [] if "value" in v}


def _addrs() -> list[str]:
    return [a.strip() for a in _inline_env().get(SHARDING.addrs_env, "").split(",") if a.strip()]


# ------------------------------------------------------------------------------------------ the workload


def test_scoring_is_a_statefulset_of_shards() -> None:
    """Stable pod names (scoring-<i>: what pscommon/config.py reads the index from), pods started and stopped
    together, updates one pod at a time, nothing on disk (partitions live in PostgreSQL)."""
    spec = STS.obj["spec"]
    problems = []
    if spec.get("serviceName") != SHARDING.headless_service:
        problems.append(f"{STS.ref}: serviceName {spec.get('serviceName')!r}, expected {SHARDING.headless_service!r}")
    if spec.get("podManagementPolicy") != "Parallel":
        problems.append(f"{STS.ref}: podManagementPolicy {spec.get('podManagementPolicy')!r}, expected 'Parallel'")
    update = spec.get("updateStrategy") or {}
    if update.get("type") != "RollingUpdate" or (update.get("rollingUpdate") or {}).get("partition", 0) != 0:
        problems.append(f"{STS.ref}: updateStrategy {update}, expected RollingUpdate of every pod")
    if spec.get("volumeClaimTemplates"):
        problems.append(f"{STS.ref}: volumeClaimTemplates; a shard keeps nothing on disk (PostgreSQL has it all)")
    # One shard would make every drain and every update an outage of all lines.
    if not 2 <= _replicas() <= PARTITIONS:
        problems.append(f"{STS.ref}: replicas {_replicas()}, expected 2 to {PARTITIONS} (each owns a partition)")
    if not selects(spec["selector"].get("matchLabels"), POD_LABELS):
        problems.append(f"{STS.ref}: spec.selector does not match the pod template labels")
    fail_if(problems)


def test_the_replicas_are_the_shard_count() -> None:
    env = _inline_env()
    assert env.get(SHARDING.count_env) == str(_replicas()), (
        f"{STS.ref}: {SHARDING.count_env}={env.get(SHARDING.count_env)!r} but replicas is {_replicas()}; change both "
        "together (SCORING_SHARDS in deploy/k8s/render.py)"
    )


def test_the_shard_addresses_are_the_pods_in_ordinal_order() -> None:
    """One address per replica, pod scoring-<i> at position i, each under the headless Service in this namespace
    (optionally fully qualified), on the container's gRPC port (which each shard listens on)."""
    addrs = _addrs()
    problems = []
    if len(addrs) != _replicas():
        problems.append(f"{STS.ref}: {SHARDING.addrs_env} lists {len(addrs)} addresses for {_replicas()} replicas")
    for i, addr in enumerate(addrs):
        host, _, port = addr.rpartition(":")
        pod_domain = f"{NAME}-{i}.{SHARDING.headless_service}.{NAMESPACE}.svc"
        if host != pod_domain and not host.startswith(f"{pod_domain}."):
            problems.append(f"{STS.ref}: shard {i}'s address {addr!r} is not pod {NAME}-{i} under {pod_domain}")
        if port != str(PORT) or container_port(main_container(STS), PORT) != PORT:
            problems.append(f"{STS.ref}: shard {i}'s address {addr!r} is not on the container's port {PORT}")
    fail_if(problems)


def test_the_shard_index_is_not_set_for_all_pods_at_once() -> None:
    """PSP_SCORING_SHARD set in the pod template, the ConfigMap or the Secret would give every pod the same index;
    the pods take theirs from their HOSTNAME. The shard settings are rendered with the replicas, never configured."""
    env = main_container(STS).get("env") or []
    problems = [f"{STS.ref}: sets {var['name']}" for var in env if var.get("name") == SHARDING.index_env]
    secret = single("Secret", SECRET).obj.get("stringData") or {}
    for name in (SHARDING.index_env, SHARDING.count_env, SHARDING.addrs_env):
        if name in config_data():
            problems.append(f"ConfigMap/{CONFIG_MAP}: sets {name}; it follows from the StatefulSet (render.py)")
        if name in secret:
            problems.append(f"Secret/{SECRET}: sets {name}")
    fail_if(problems)


def _pod_settings(monkeypatch: pytest.MonkeyPatch, ordinal: int) -> Settings:
    """pscommon.config.Settings as pod <NAME>-<ordinal> reads them: the ConfigMap, then its own env, its HOSTNAME."""
    for var in [*config_data(), SHARDING.index_env, SHARDING.count_env, SHARDING.addrs_env, "HOSTNAME"]:
        monkeypatch.delenv(var, raising=False)
    for key, value in (config_data() | _inline_env()).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOSTNAME", f"{NAME}-{ordinal}")
    return Settings()


def test_every_pod_is_its_own_shard_and_all_partitions_are_owned_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the service's own code: each pod's settings give shard <ordinal> of <replicas>, a shard map the
    service accepts, its own address to listen on (on the container's port), and the pods' partitions cover all
    PARTITIONS exactly once."""
    owned: list[int] = []
    for i in range(_replicas()):
        cfg = _pod_settings(monkeypatch, i)
        assert (cfg.scoring_shard, cfg.scoring_shards) == (i, _replicas()), (
            f"pod {NAME}-{i} would run as shard {cfg.scoring_shard} of {cfg.scoring_shards}"
        )
        shard_map = ShardMap(cfg.scoring_shards, cfg.scoring_shard)
        shards = Shards(cfg, shard_map, lambda msisdn: msisdn)  # checks the addresses against the count
        assert shards.addrs == _addrs()
        listen = scoring_server.address(cfg)
        assert listen == _addrs()[i] and listen.rpartition(":")[2] == str(PORT), (
            f"pod {NAME}-{i} would listen on {listen!r}, not its own address on port {PORT}"
        )
        owned += shard_map.owned
    assert sorted(owned) == list(range(PARTITIONS)), "the shards' partitions do not cover every partition once"


# ----------------------------------------------------------------------------- services, disruption budget


def test_the_headless_service_names_every_pod_even_before_it_is_ready() -> None:
    svc = single("Service", SHARDING.headless_service)
    spec = svc.obj["spec"]
    problems = []
    if spec.get("clusterIP") != "None":
        problems.append(f"{svc.ref}: clusterIP {spec.get('clusterIP')!r}, expected 'None' (headless)")
    if spec.get("publishNotReadyAddresses") is not True:
        problems.append(f"{svc.ref}: publishNotReadyAddresses is not true; starting shards could not reach each other")
    if not selects(spec.get("selector"), POD_LABELS):
        problems.append(f"{svc.ref}: selector {spec.get('selector')} does not select the StatefulSet's pods")
    ports = [
        (p.get("port"), container_port(main_container(STS), p.get("targetPort", p.get("port"))))
        for p in spec.get("ports") or []
    ]
    if ports != [(PORT, PORT)]:
        problems.append(f"{svc.ref}: ports {spec.get('ports')}, expected {PORT} to the container's port {PORT}")
    # Clients keep the ordinary Service, load-balanced over the ready pods: any shard takes any request.
    clients = single("Service", NAME).obj["spec"]
    if clients.get("clusterIP") == "None" or clients.get("type", "ClusterIP") != "ClusterIP":
        problems.append(f"Service/{NAME}: {clients}, expected an ordinary ClusterIP Service for the clients")
    if not selects(clients.get("selector"), POD_LABELS):
        problems.append(f"Service/{NAME}: does not select the StatefulSet's pods")
    fail_if(problems)


def test_voluntary_disruptions_take_one_shard_at_a_time() -> None:
    pdbs = [
        p
        for p in of_kind("PodDisruptionBudget")
        if selects((p.obj["spec"].get("selector") or {}).get("matchLabels"), POD_LABELS)
    ]
    assert len(pdbs) == 1, f"expected one PodDisruptionBudget for {STS.ref}, found {ids(pdbs)}"
    spec = pdbs[0].obj["spec"]
    assert spec.get("maxUnavailable") == 1 and "minAvailable" not in spec, f"{pdbs[0].ref}: {spec}"


# ------------------------------------------------------------------------------------------ render.py


def _scoring() -> Any:
    (process,) = [p for p in render.PROCESSES if p.name == NAME]
    return process


def test_render_agrees_with_the_service_on_the_partitions() -> None:
    assert render.PARTITIONS == PARTITIONS, (
        "deploy/k8s/render.py PARTITIONS differs from services/scoring/partitions.py"
    )


def test_resharding_is_one_number_in_render_py() -> None:
    """Changing the shard count changes the replicas, the count and the addresses together, and not the certificate
    (its wildcard covers any number of pods)."""
    process = _scoring()
    three = dataclasses.replace(process, sharding=dataclasses.replace(process.sharding, shards=3))
    sts = render.stateful_set(three)
    env = {v["name"]: v["value"] for v in sts["spec"]["template"]["spec"]["containers"][0]["env"] if "value" in v}
    assert sts["spec"]["replicas"] == 3
    assert env[SHARDING.count_env] == "3"
    assert [a.partition(".")[0] for a in env[SHARDING.addrs_env].split(",")] == [f"{NAME}-{i}" for i in range(3)]
    assert render.certificate(three) == render.certificate(process)
    for impossible in (0, PARTITIONS + 1):
        with pytest.raises(ValueError):
            render.stateful_set(
                dataclasses.replace(process, sharding=dataclasses.replace(process.sharding, shards=impossible))
            )
