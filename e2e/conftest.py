"""E2E catalog: the shared fixtures (e2e/fixtures.py)."""

from e2e.fixtures import *  # noqa: F403 - pytest finds fixtures and hooks by name
