"""End-to-end fixtures: the bridge tests run once per Smartcar API version (bridge_env.py)."""

from tests.e2e.bridge_env import pytest_configure, pytest_generate_tests, smartcar_api_version

__all__ = ["pytest_configure", "pytest_generate_tests", "smartcar_api_version"]
