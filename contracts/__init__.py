"""Contracts shared by the services, the worker and psctl, owned by none of them."""
