"""Shared fixtures: the PyTorch oracle and the rule that parity must run in CI.

Without torch the parity tests skip with a visible reason; under CI=true a missing torch, or a
run in which no parity test passed, fails the session.
"""

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
_parity_passed = 0


def _import_torch():
    try:
        import torch
    except ImportError:
        if IN_CI:
            pytest.fail("CI=true but torch is not installed: pip install torch==2.13.0")
        pytest.skip("PyTorch parity skipped: torch is not installed (pip install torch==2.13.0)")
    torch.set_num_threads(2)
    return torch


@pytest.fixture(scope="session")
def torch():
    """The real PyTorch, the oracle for every op (a test-only dependency)."""
    return _import_torch()


def pytest_collection_modifyitems(items):
    for item in items:
        if "torch" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.parity)


def pytest_configure(config):
    config.addinivalue_line("markers", "parity: compares minidl against real PyTorch")


def pytest_runtest_logreport(report):
    global _parity_passed
    if report.when == "call" and report.passed and "parity" in report.keywords:
        _parity_passed += 1


def pytest_sessionfinish(session, exitstatus):
    if IN_CI and exitstatus == 0 and _parity_passed == 0 and session.testscollected:
        session.exitstatus = 1
        print("\nCI=true but no PyTorch parity test passed: failing the run.")


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"PyTorch parity tests passed: {_parity_passed}")
