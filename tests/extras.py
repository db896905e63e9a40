"""The optional export packages (``pip install -e ".[test]"`` installs them): imported as the
torch oracle is, failing under CI=true when one is missing, skipping with the reason otherwise."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from conftest import IN_CI


def import_extra(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        if IN_CI:
            pytest.fail(f'CI=true but {name} is not installed: pip install -e ".[test]"')
        pytest.skip(f'{name} is not installed (pip install -e ".[test]")')
