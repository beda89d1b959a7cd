"""Contracts shared by the services, the worker and psctl, owned by none of them."""

import pathlib

# Who may call which gRPC method (loaded by pscommon.access; PSP_ACCESS_TABLE names another copy).
ACCESS_TABLE = pathlib.Path(__file__).with_name("access.yaml")
