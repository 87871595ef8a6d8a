"""Shared fixtures. Plain helpers live in tests/helpers.py (`from helpers import ...`)."""

from __future__ import annotations

import resource

import pytest
from helpers import make_image_folder

_CPU_KEY = "cpu_s"
_cpu_by_test: dict[str, float] = {}


def pytest_addoption(parser):
    parser.addoption(
        "--cpu-durations",
        type=int,
        metavar="N",
        help="list the N tests that took the most CPU seconds: user+sys of the test process and "
        "of the subprocesses it waited for, setup and teardown included (wall durations mean "
        "little on a shared machine)",
    )


def _cpu_now() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(item):
    """Add the phase's CPU seconds to the item's user_properties, which the phase's report
    carries (also from a pytest-xdist worker to the process that prints the summary)."""
    start = _cpu_now()
    try:
        return (yield)
    finally:
        item.user_properties.append((_CPU_KEY, _cpu_now() - start))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _timed(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _timed(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    return (yield from _timed(item))


def pytest_runtest_logreport(report):
    if report.when == "teardown":  # its user_properties hold all three phases'
        _cpu_by_test[report.nodeid] = sum(v for k, v in report.user_properties if k == _CPU_KEY)


def pytest_terminal_summary(terminalreporter, config):
    top = config.getoption("--cpu-durations")
    if top is None or not _cpu_by_test:
        return
    ranked = sorted(_cpu_by_test.items(), key=lambda kv: kv[1], reverse=True)
    total = sum(_cpu_by_test.values())
    terminalreporter.write_sep("=", f"{top or len(ranked)} tests that took the most CPU")
    for nodeid, seconds in ranked[: top or None]:
        terminalreporter.write_line(f"{seconds:8.1f} CPU-s  {nodeid}")
    terminalreporter.write_line(f"{total:8.1f} CPU-s  all {len(ranked)} tests")


@pytest.fixture(autouse=True, scope="session")
def _private_check_cache(tmp_path_factory):
    """Tests never write into the user's check cache (~/.cache/tltk/checks.sqlite3), and
    subprocesses they start inherit the same private one."""
    import os

    path = tmp_path_factory.mktemp("check_cache") / "checks.sqlite3"
    before = os.environ.get("TLTK_CHECKS_CACHE")
    os.environ["TLTK_CHECKS_CACHE"] = str(path)
    yield path
    if before is None:
        os.environ.pop("TLTK_CHECKS_CACHE", None)
    else:
        os.environ["TLTK_CHECKS_CACHE"] = before


@pytest.fixture
def image_folder(tmp_path):
    """A tiny class-folder dataset: tmp/images/{cat,dog}/0..5.png, 16x16 RGB."""
    return make_image_folder(tmp_path / "images")


def pytest_collection_modifyitems(config, items):
    """Files with slow tests run first, each file's tests still together and in order.

    Under pytest-xdist's work stealing (scripts/test.sh) each worker starts on one half of this
    order and steals from the end of the other's queue, so the minute-long end-to-end tests
    start early and the run ends on short tests spread over the workers, not on one long test
    while the others wait; a file's module fixtures are built once, on the worker that has it.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: files stay contiguous
