"""Shared plumbing for the protective-suspension services: bootstrap, errors, telemetry, codec, DB."""
