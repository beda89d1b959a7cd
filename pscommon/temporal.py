"""Temporal client wiring shared by scoring, verification, the worker and psctl."""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from typing import Any, TypeVar

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import SearchAttributeKey
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from pscommon.codec import from_settings
from pscommon.config import Settings
from pscommon.db import wait_until_up

log = logging.getLogger(__name__)
T = TypeVar("T")

LINE_HASH = SearchAttributeKey.for_keyword("LineHash")
MASKED_NUMBER = SearchAttributeKey.for_keyword("MaskedNumber")
RISK_LEVEL = SearchAttributeKey.for_keyword("RiskLevel")
HOME_PROVINCE = SearchAttributeKey.for_keyword("HomeProvince")
CASE_STAGE = SearchAttributeKey.for_keyword("CaseStage")
ROAMING = SearchAttributeKey.for_bool("Roaming")
# Whether the case's last warning reached the holder (set once its delivery is known): "roamers not reached".
WARNING_DELIVERED = SearchAttributeKey.for_bool("WarningDelivered")
SEARCH_ATTRIBUTES: list[SearchAttributeKey[Any]] = [
    LINE_HASH,
    MASKED_NUMBER,
    RISK_LEVEL,
    HOME_PROVINCE,
    CASE_STAGE,
    ROAMING,
    WARNING_DELIVERED,
]


def search_attribute_flags() -> list[str]:
    """`--search-attribute` arguments for `temporal server start-dev`."""
    kinds = {"KEYWORD": "Keyword", "BOOL": "Bool"}
    return [
        f"{k.name}={kinds[k.indexed_value_type.name.removeprefix('INDEXED_VALUE_TYPE_')]}" for k in SEARCH_ATTRIBUTES
    ]


def data_converter(cfg: Settings) -> DataConverter:
    return dataclasses.replace(DataConverter.default, payload_codec=from_settings(cfg.codec_keys, cfg.codec_active_key))


def tls_config(cfg: Settings) -> TLSConfig | bool:
    """TLS to the frontend from TEMPORAL_TLS_*: the frontend's CA, and a client certificate with its key for a
    frontend that requires one (mutual TLS). Nothing set: plaintext, as the local dev server speaks. The files are
    read here, once per connection: a renewed certificate takes effect when the process restarts."""
    paths = {"TEMPORAL_TLS_CA": cfg.temporal_tls_ca, "TEMPORAL_TLS_CERT": cfg.temporal_tls_cert}
    paths["TEMPORAL_TLS_KEY"] = cfg.temporal_tls_key
    if not any(paths.values()) and not cfg.temporal_tls_server_name:
        return False
    missing = [name for name, value in paths.items() if not value]
    if "TEMPORAL_TLS_CA" in missing or len(missing) == 1:
        # A CA alone (server-verified TLS) is allowed; half a client identity or a client without a CA is not.
        raise RuntimeError(f"TLS to Temporal needs {', '.join(missing)} as well (set all three, or only the CA)")
    pem = {name: pathlib.Path(value).read_bytes() if value else None for name, value in paths.items()}
    return TLSConfig(
        server_root_ca_cert=pem["TEMPORAL_TLS_CA"],
        domain=cfg.temporal_tls_server_name or None,
        client_cert=pem["TEMPORAL_TLS_CERT"],
        client_private_key=pem["TEMPORAL_TLS_KEY"],
    )


async def connect(cfg: Settings, wait_s: float | None = None) -> Client:
    """A client of the Temporal frontend; one that does not answer yet (starting, restarting) is waited for,
    `wait_s` in all (PSP_STARTUP_WAIT_S)."""

    tls = tls_config(cfg)

    async def attempt() -> Client:
        return await Client.connect(
            cfg.temporal_address,
            namespace=cfg.temporal_namespace,
            tls=tls,
            data_converter=data_converter(cfg),
            interceptors=[TracingInterceptor()],
        )

    budget = cfg.startup_wait_s if wait_s is None else wait_s
    return await wait_until_up(f"Temporal at {cfg.temporal_address}", attempt, unreachable, budget, log)


def unreachable(err: Exception) -> bool:
    """The frontend refused or dropped the connection, or is not serving yet (what a restart looks like)."""
    if isinstance(err, RPCError):
        return err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)
    return isinstance(err, RuntimeError) and str(err).startswith("Failed client connect")


async def ensure_search_attributes(client: Client) -> None:
    """Registers our search attributes where the server lacks them (the dev server has them from its flags)."""
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        known = set(existing.custom_attributes)
    except RPCError as err:
        if err.status != RPCStatusCode.UNIMPLEMENTED:  # the time-skipping test server only adds
            raise
        known = set()
    missing = {
        k.name: IndexedValueType.ValueType(k.indexed_value_type.value) for k in SEARCH_ATTRIBUTES if k.name not in known
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )


def case_url(cfg: Settings, workflow_id: str) -> str:
    return f"{cfg.temporal_ui_url}/namespaces/{cfg.temporal_namespace}/workflows/{workflow_id}"


async def update_following_runs(
    client: Client, workflow_id: str, update: str, arg: Any, result_type: type[T], renewed: str
) -> T:
    """Runs an update on the workflow's current run; when the run ends by continuing as new before answering (it
    fails the update with an ApplicationError of type `renewed`), asks the next run."""
    while True:
        try:
            return await client.get_workflow_handle(workflow_id).execute_update(update, arg, result_type=result_type)
        except WorkflowUpdateFailedError as err:
            if not (isinstance(err.cause, ApplicationError) and err.cause.type == renewed):
                raise
