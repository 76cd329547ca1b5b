"""The package as pyproject.toml declares it: dependencies are exactly what the code imports,
``import portico_rx`` loads no console or UI library, one version, a licence.

The imports are read from the source (``import x``, ``from x import y`` and
``require("x", "extra")``) and mapped to distributions through the installed metadata.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SOURCES = sorted(
    [*(ROOT / "portico_rx").rglob("*.py"), *(ROOT / "_portico_rx_plugins").rglob("*.py")]
)
OWN = {"portico_rx", "_portico_rx_plugins"}
TOOL_EXTRAS = {"dev", "all", "docs"}
# Declared but not imported by name: loaded by another library on the package's behalf.
INDIRECT = {
    "tzdata": "zoneinfo reads it where the system has no zone database",
    "aiosqlite": "SQLAlchemy's driver for sqlite+aiosqlite:// URLs",
}
NEVER_AT_IMPORT = ("rich", "click", "typer", "ipywidgets", "IPython", "pandas", "numpy",
                   "matplotlib", "fastapi", "starlette", "uvicorn", "structlog", "hypothesis",
                   "pytest", "croniter", "httpx", "sqlalchemy")  # fmt: skip


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    names = set()
    for text in requirements:
        requirement = Requirement(text)
        if canonical(requirement.name) != "portico-rx":
            names.add(canonical(requirement.name))
    return names


CORE = requirement_names(PROJECT["dependencies"])
EXTRAS = {
    extra: requirement_names(reqs) for extra, reqs in PROJECT["optional-dependencies"].items()
}
RUNTIME_EXTRAS = {extra: names for extra, names in EXTRAS.items() if extra not in TOOL_EXTRAS}
DISTRIBUTIONS = importlib.metadata.packages_distributions()


def distribution_of(module: str) -> str:
    """The distribution that ships ``module``; in a namespace package several
    distributions share the top level (``opentelemetry``): the one holding the module's
    own path (``opentelemetry.sdk.metrics`` -> opentelemetry-sdk)."""
    names = DISTRIBUTIONS[module.split(".")[0]]
    if len(names) > 1:
        parts = module.split(".")
        for depth in range(len(parts), 1, -1):
            stem = "/".join(parts[:depth])
            owners = [
                name
                for name in names
                if any(
                    str(file).startswith((stem + "/", stem + ".py"))
                    for file in importlib.metadata.distribution(name).files or ()
                )
            ]
            if len(owners) == 1:
                return canonical(owners[0])
        if "opentelemetry-api" in map(canonical, names):  # the namespace's own modules
            return "opentelemetry-api"
    return canonical(names[0])


def imports_in(path: Path) -> Iterator[tuple[str, str | None, int]]:
    """(module, extra named by ``require``, line) for every third-party import in ``path``."""
    for node in ast.walk(ast.parse(path.read_text())):
        modules: list[tuple[str, str | None]] = []
        if isinstance(node, ast.Import):
            modules = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [(node.module, None)]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "require"
            and len(node.args) == 2
            and all(isinstance(a, ast.Constant) for a in node.args)
        ):
            modules = [(node.args[0].value, node.args[1].value)]  # type: ignore[attr-defined]
        for module, extra in modules:
            top = module.split(".")[0]
            if top not in sys.stdlib_module_names and top not in OWN:
                yield module, extra, node.lineno


IMPORTS = [
    (path.relative_to(ROOT).as_posix(), module, extra, line)
    for path in SOURCES
    for module, extra, line in imports_in(path)
]
IMPORTED = {distribution_of(module) for _, module, _, _ in IMPORTS}


def test_every_import_is_a_declared_dependency() -> None:
    declared = CORE.union(*RUNTIME_EXTRAS.values())
    undeclared = {
        f"{path}:{line} {module}"
        for path, module, _, line in IMPORTS
        if distribution_of(module) not in declared
    }
    assert not undeclared


def test_require_names_the_extra_that_holds_the_module() -> None:
    wrong = {
        f"{path}:{line} require({module!r}, {extra!r})"
        for path, module, extra, line in IMPORTS
        if extra is not None
        and distribution_of(module) not in CORE | RUNTIME_EXTRAS.get(extra, set())
    }
    assert not wrong


def test_every_dependency_is_imported_by_the_package() -> None:
    assert CORE <= IMPORTED, CORE - IMPORTED
    for extra, names in RUNTIME_EXTRAS.items():
        unused = names - IMPORTED - set(INDIRECT)
        assert not unused, f"extra {extra!r} declares {sorted(unused)}, which nothing imports"


def test_oracles_and_peers_of_the_tests_are_dev_only() -> None:
    for name in ("croniter", "standardwebhooks"):
        assert name not in IMPORTED
        assert name in EXTRAS["dev"]
        assert not [extra for extra, names in RUNTIME_EXTRAS.items() if name in names]
        assert name not in CORE


def test_all_installs_every_runtime_extra() -> None:
    [everything] = PROJECT["optional-dependencies"]["all"]
    assert set(Requirement(everything).extras) == set(RUNTIME_EXTRAS)
    assert "portico_rx[testing,docs]" in PROJECT["optional-dependencies"]["dev"]


def test_import_portico_rx_loads_the_core_and_no_console_or_ui_library() -> None:
    code = (
        "import sys, json\nbefore = set(sys.modules)\nimport portico_rx\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    loaded = set(json.loads(done.stdout))
    assert not loaded & set(NEVER_AT_IMPORT), sorted(loaded & set(NEVER_AT_IMPORT))
    third_party = {
        distribution_of(m)
        for m in loaded
        if m not in sys.stdlib_module_names and m not in OWN and m in DISTRIBUTIONS
    }
    assert third_party <= closure(CORE), sorted(third_party - closure(CORE))


def closure(names: set[str]) -> set[str]:
    """``names`` and everything they require (without extras), from installed metadata."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in importlib.metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonical(requirement.name))
    return seen


def test_the_version_is_written_once() -> None:
    import portico_rx
    from portico_rx._version import __version__

    assert "version" not in PROJECT and PROJECT["dynamic"] == ["version"]
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["dynamic"]["version"] == {"attr": "portico_rx._version.__version__"}
    assert portico_rx.__version__ == __version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    written = [
        p.relative_to(ROOT).as_posix()
        for p in SOURCES
        if re.search(r"^__version__\s*=", p.read_text(), re.M)
    ]
    assert written == ["portico_rx/_version.py"]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {__version__}" in changelog


def test_the_licence_file_is_the_declared_one() -> None:
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text


def test_contributing_gives_the_readme_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    commands = [
        line.strip()
        for line in readme.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
        if "pip install" in line
    ]
    assert len(commands) == 2 and "pytest" in commands[1]  # the quickstart's, the tests'
    for command in commands:
        assert command in contributing, command


def test_the_watchfiles_constructor_we_call_is_the_installed_one() -> None:
    """sources/_files.py calls ``watchfiles._rust_notify.RustNotify`` positionally (no
    public API gives its overflow and permission options): pyproject bounds watchfiles to
    the releases with this constructor, and this test fails loudly on one without it."""
    rust = pytest.importorskip("watchfiles._rust_notify")
    assert rust.RustNotify.__text_signature__ == (
        "(watch_paths, debug, force_polling, poll_delay_ms, recursive, ignore_permission_denied)"
    )
    [bound] = [Requirement(r) for r in PROJECT["optional-dependencies"]["files"]]
    assert bound.name == "watchfiles" and bound.specifier.contains(
        importlib.metadata.version("watchfiles")
    )
    assert any(spec.operator == "<" for spec in bound.specifier)


SHARED_SERVICE_CONTROL = re.compile(
    r"rabbitmqctl[\"',\s]+(stop|stop_app|reset|force_reset|shutdown|close_connection|"
    r"set_vm_memory_high_watermark)|"
    r"[\"']CONFIG[\"']?\s*,?\s*[\"']?SET\b|\.config_set\(|[\"']SHUTDOWN\b|"
    r"[\"']DEBUG[\"']?\s*,?\s*[\"']?SLEEP\b|[\"']CLIENT[\"']?\s*,?\s*[\"']?KILL\b|"
    r"\.client_kill|pg_terminate_backend|ALTER SYSTEM|pg_ctl|systemctl|service \w+ stop"
)


def test_tests_keep_their_hands_off_the_shared_services() -> None:
    """Outages are tested on private servers on free ports (tests/queues/conftest.py),
    never by stopping or reconfiguring the machine's PostgreSQL, Redis, RabbitMQ, NATS or
    Mosquitto, which other test runs use at the same time."""
    this = Path(__file__).resolve()
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if path.resolve() != this
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if SHARED_SERVICE_CONTROL.search(line)
    ]
    assert not found
