from __future__ import annotations

import os

# Before anything imports huggingface_hub: never touch the network from tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: subprocesses, clusters or long media (deselect with -m 'not slow')")
