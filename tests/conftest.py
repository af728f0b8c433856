"""Shared fixtures."""

from __future__ import annotations

import pytest

from tests.helpers import ManualClock, ScriptedProbe


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def probe() -> ScriptedProbe:
    return ScriptedProbe()
