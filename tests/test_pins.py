"""The pinned dependency sets under runner/pins/: exact pins that cover what mlx-parity needs on
both platforms it runs on, and that install together.

A round's pin set is installed with the checkout and its ``mlx`` extra (``uv pip install -r
<pins> ".[mlx]"``) by the probe jobs on macOS arm64; the control set (``control.txt``,
constraints only) is installed with the checkout alone by plan and collect on Linux x86_64.

- Offline: every line is an exact ``==`` pin (or ``-c``/``-r`` naming another pins file); every
  runtime dependency pyproject.toml declares (read each time, so the check follows it) is pinned
  once per platform, with its extras, at a version its specifier allows.
- Against the package index: pip resolves each round's pin set for this machine and uv for the
  probe runner (macOS arm64), and both land on exactly the pinned versions. A conflict fails;
  an index that cannot be reached skips.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from mlx_parity.workflow.generate import CONTROL_PINS

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
PINS_DIR = ROOT / "runner" / "pins"
PIN_FILES = sorted(PINS_DIR.glob("*.txt"))
# What a round's pin set is installed with besides the project's dependencies: `.[mlx]`.
ROUND_EXTRAS = ("mlx",)

# The platforms mlx-parity runs on, as marker environments: plan and collect on ubuntu x86_64,
# the probe jobs on macOS arm64; Python as the workflow sets it up.
PYTHON = "3.12"
PLATFORMS: dict[str, dict[str, str]] = {
    "linux x86_64": {
        "os_name": "posix",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "platform_release": "",
        "platform_version": "",
        "python_version": PYTHON,
        "python_full_version": f"{PYTHON}.0",
        "implementation_name": "cpython",
        "implementation_version": f"{PYTHON}.0",
        "platform_python_implementation": "CPython",
    },
    "macOS arm64": {
        "os_name": "posix",
        "sys_platform": "darwin",
        "platform_system": "Darwin",
        "platform_machine": "arm64",
        "platform_release": "",
        "platform_version": "",
        "python_version": PYTHON,
        "python_full_version": f"{PYTHON}.0",
        "implementation_name": "cpython",
        "implementation_version": f"{PYTHON}.0",
        "platform_python_implementation": "CPython",
    },
}
# The probe runner for uv's resolution: macos-15 on Apple silicon (MLX ships no wheel for the
# macOS 13 that uv assumes by default).
PROBE_PLATFORM = "aarch64-apple-darwin"
PROBE_MACOS = "15.0"

INCLUDE = re.compile(r"^(-c|--constraint|-r|--requirement)(?:\s+|=)(?P<file>\S+)$")
CONFLICT = re.compile(
    r"ResolutionImpossible|conflicting dependencies|No solution found when resolving"
)
# What pip (urllib3) and uv (reqwest) say when the index cannot be reached.
UNREACHABLE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|ProxyError|ConnectTimeoutError"
    r"|ReadTimeoutError|Max retries exceeded|Temporary failure in name resolution"
    r"|Name or service not known|Network is unreachable|Failed to fetch|error sending request"
    r"|client error \(Connect\)|dns error|tcp connect error|operation timed out"
)
RESOLVE_TIMEOUT = 180


@dataclass(frozen=True)
class Pin:
    requirement: Requirement
    where: str  # file:line


def read_pins(path: Path) -> list[Pin]:
    """The requirements of a pins file, those of the files it includes (-c/-r) included."""
    pins: list[Pin] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*", "", raw).strip()
        if not line:
            continue
        where = f"{path.name}:{number}"
        if include := INCLUDE.match(line):
            pins += read_pins(path.parent / include["file"])
            continue
        if line.startswith("-"):
            raise ValueError(f"{where}: option {line!r} is not expected in a pins file")
        try:
            pins.append(Pin(Requirement(line), where))
        except InvalidRequirement as error:
            raise ValueError(f"{where}: {error}") from None
    return pins


def exact_version(requirement: Requirement) -> Version | None:
    """The version an exact `name==version` pin names, else None."""
    (specifier, *more) = [*requirement.specifier] or [None]
    if more or specifier is None or specifier.operator != "==" or "*" in specifier.version:
        return None
    if requirement.url:
        return None
    return Version(specifier.version)


def applies(requirement: Requirement, environment: dict[str, str] | None) -> bool:
    return requirement.marker is None or requirement.marker.evaluate(environment)


def project_requirements(pyproject: Path, extras: tuple[str, ...]) -> list[Requirement]:
    """What installing the project with these extras requires, itself excluded."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    texts = list(project.get("dependencies", []))
    for extra in extras:
        texts += project.get("optional-dependencies", {})[extra]
    own = canonicalize_name(project["name"])
    return [req for req in map(Requirement, texts) if canonicalize_name(req.name) != own]


def pin_problems(
    path: Path,
    requirements: list[Requirement],
    platforms: Mapping[str, Mapping[str, str] | None] = PLATFORMS,
    constraints: bool = False,
) -> list[str]:
    """What is wrong with a pins file for a project with these requirements, on each of
    ``platforms`` (None: this machine). A ``constraints`` file (pip's -c) cannot carry extras or
    markers, so those are refused and a requirement's extras are not looked for."""
    pins = read_pins(path)
    problems = [
        f"{pin.where}: {pin.requirement} is not an exact == pin"
        for pin in pins
        if exact_version(pin.requirement) is None
    ]
    if constraints:
        problems += [
            f"{pin.where}: {pin.requirement}: a constraint has no extras or marker"
            for pin in pins
            if pin.requirement.extras or pin.requirement.marker
        ]
    for platform, environment in platforms.items():
        pinned: dict[str, Pin] = {}
        for pin in pins:
            if not applies(pin.requirement, environment):
                continue
            name = canonicalize_name(pin.requirement.name)
            if name in pinned:
                problems.append(
                    f"{platform}: {name} is pinned twice ({pinned[name].where}, {pin.where})"
                )
            pinned.setdefault(name, pin)
        for requirement in requirements:
            if not applies(requirement, environment):
                continue
            pin = pinned.get(canonicalize_name(requirement.name))
            if pin is None:
                problems.append(f"{platform}: {requirement} is not pinned")
                continue
            version = exact_version(pin.requirement)
            if version is not None and not requirement.specifier.contains(
                version, prereleases=True
            ):
                problems.append(f"{platform}: {pin.where}: {pin.requirement} breaks {requirement}")
            missing = sorted(requirement.extras - pin.requirement.extras)
            if missing and not constraints:
                problems.append(
                    f"{platform}: {pin.where}: {pin.requirement} lacks the extra(s) "
                    f"{', '.join(missing)} of {requirement}"
                )
    return problems


def extras_for(path: Path) -> tuple[str, ...]:
    return () if path.stem == CONTROL_PINS else ROUND_EXTRAS


# --- offline -----------------------------------------------------------------------------


def test_there_are_pin_sets() -> None:
    names = {path.stem for path in PIN_FILES}
    assert {"default", CONTROL_PINS} <= names, names


@pytest.mark.parametrize("path", PIN_FILES, ids=lambda path: path.name)
def test_pins_are_exact_and_cover_the_project_on_both_platforms(path: Path) -> None:
    problems = pin_problems(path, project_requirements(PYPROJECT, extras_for(path)))
    assert not problems, "\n".join(problems)


def test_pin_problems_are_found(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "demo"\ndependencies = ["pydantic>=2.7", "scipy>=1.11"]\n'
        "[project.optional-dependencies]\nmlx = [\n"
        "  \"mlx[cpu]>=0.30; sys_platform == 'linux'\",\n"
        "  \"mlx>=0.30; sys_platform == 'darwin'\",\n"
        '  "demo[extra]",\n]\n',
        encoding="utf-8",
    )
    requirements = project_requirements(pyproject, ("mlx",))
    assert [str(req) for req in requirements] == [
        "pydantic>=2.7",
        "scipy>=1.11",
        'mlx[cpu]>=0.30; sys_platform == "linux"',
        'mlx>=0.30; sys_platform == "darwin"',
    ]
    good = tmp_path / "good.txt"
    good.write_text(
        "# comment\n"
        'mlx==0.30.0; sys_platform == "darwin"\n'
        'mlx[cpu]==0.30.0; sys_platform == "linux"  # trailing comment\n'
        "pydantic==2.7.0\nscipy==1.11.0\n",
        encoding="utf-8",
    )
    assert pin_problems(good, requirements) == []
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("-c good.txt\n", encoding="utf-8")
    assert pin_problems(constraints, requirements) == []

    bad = tmp_path / "bad.txt"
    bad.write_text(
        "mlx==0.29.0\n"  # both platforms, too old; on Linux without the cpu extra
        "pydantic>=2.7\n"  # not exact
        "pydantic==2.8.0\n"  # twice
        "requests==2.31.0\n",  # scipy missing; requests is pinned but not required: fine
        encoding="utf-8",
    )
    assert pin_problems(bad, requirements) == [
        "bad.txt:2: pydantic>=2.7 is not an exact == pin",
        "linux x86_64: pydantic is pinned twice (bad.txt:2, bad.txt:3)",
        "linux x86_64: scipy>=1.11 is not pinned",
        'linux x86_64: bad.txt:1: mlx==0.29.0 breaks mlx[cpu]>=0.30; sys_platform == "linux"',
        "linux x86_64: bad.txt:1: mlx==0.29.0 lacks the extra(s) cpu of "
        'mlx[cpu]>=0.30; sys_platform == "linux"',
        "macOS arm64: pydantic is pinned twice (bad.txt:2, bad.txt:3)",
        "macOS arm64: scipy>=1.11 is not pinned",
        'macOS arm64: bad.txt:1: mlx==0.29.0 breaks mlx>=0.30; sys_platform == "darwin"',
    ]
    option = tmp_path / "option.txt"
    option.write_text("--index-url https://example.com/simple\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"option.txt:1: option"):
        read_pins(option)


# --- against the package index -----------------------------------------------------------

# The round pin sets: what a probe job resolves (the control set only constrains them).
ROUND_PIN_FILES = [path for path in PIN_FILES if path.stem != CONTROL_PINS]


def _resolve(command: list[str], what: str, path: Path, **kwargs) -> None:
    """Run a resolver; skip when the index cannot be reached, fail when it cannot resolve."""
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=RESOLVE_TIMEOUT, **kwargs
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"{what}: no answer from the package index in {RESOLVE_TIMEOUT} s")
    output = result.stdout + result.stderr
    if result.returncode == 0:
        return
    # pip's warnings about this machine's unreadable extra indexes are noise here.
    output = "\n".join(line for line in output.splitlines() if "is ignored" not in line)
    if CONFLICT.search(output):
        pytest.fail(f"{what}: the pins conflict:\n{output[-4000:]}")
    if unreachable := [line for line in output.splitlines() if UNREACHABLE.search(line)]:
        pytest.skip(f"{what}: the package index cannot be reached: {unreachable[-1].strip()}")
    pytest.fail(f"{what} failed:\n{output[-4000:]}")


def _pinned_versions(path: Path, environment: dict[str, str] | None) -> dict[str, Version]:
    return {
        canonicalize_name(pin.requirement.name): exact_version(pin.requirement)
        for pin in read_pins(path)
        if applies(pin.requirement, environment)
    }


@pytest.mark.parametrize("path", ROUND_PIN_FILES, ids=lambda path: path.name)
def test_pins_install_together_here(path: Path, tmp_path: Path) -> None:
    """pip, for this machine: the set resolves from the index to exactly its pins."""
    report = tmp_path / "report.json"
    command = [
        sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
        "--report", str(report), "--only-binary=:all:", "--retries", "2", "--timeout", "30",
        "-r", str(path),
    ]  # fmt: skip
    _resolve(command, f"pip install --dry-run -r {path.name}", path)
    resolved = {
        canonicalize_name(item["metadata"]["name"]): Version(item["metadata"]["version"])
        for item in json.loads(report.read_text(encoding="utf-8"))["install"]
    }
    pinned = _pinned_versions(path, None)
    assert {name: resolved.get(name) for name in pinned} == pinned


@pytest.mark.skipif(importlib.util.find_spec("uv") is None, reason="uv is not installed")
@pytest.mark.parametrize("path", ROUND_PIN_FILES, ids=lambda path: path.name)
def test_pins_install_together_on_the_probe_runner(path: Path, tmp_path: Path) -> None:
    """uv, for macOS arm64 (the probe jobs' platform): the set resolves to exactly its pins."""
    output = tmp_path / "resolved.txt"
    command = [
        sys.executable, "-m", "uv", "pip", "compile", "--python-platform", PROBE_PLATFORM,
        "--python-version", PYTHON, "--only-binary", ":all:", "--no-header", "--no-annotate",
        "--quiet", "--output-file", str(output), str(path),
    ]  # fmt: skip
    env = {**os.environ, "MACOSX_DEPLOYMENT_TARGET": PROBE_MACOS}
    _resolve(command, f"uv pip compile {path.name} for {PROBE_PLATFORM}", path, env=env)
    resolved = {}
    for line in output.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            resolved[canonicalize_name(requirement.name)] = exact_version(requirement)
    pinned = _pinned_versions(path, PLATFORMS["macOS arm64"])
    assert {name: resolved.get(name) for name in pinned} == pinned


# --- the test environment ------------------------------------------------------------------

TEST_CONSTRAINTS = ROOT / "runner" / "test-constraints.txt"
# Installed with the project by the README's test command, besides its `test` extra.
PEER_FILES = (ROOT / "runner" / "peers-linux.txt", ROOT / "runner" / "peers-linux-deps.txt")
# What builds the editable install (pyproject.toml's [build-system]), pinned by the same file.
BUILD_REQUIREMENTS = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["build-system"][
    "requires"
]


def test_the_test_environment_pins_everything_the_test_command_installs() -> None:
    requirements = project_requirements(PYPROJECT, ("test", "mlx"))
    requirements += [pin.requirement for path in PEER_FILES for pin in read_pins(path)]
    requirements += [Requirement(text) for text in BUILD_REQUIREMENTS]
    requirements.append(Requirement("pip"))  # upgraded first, to the pinned release
    problems = pin_problems(TEST_CONSTRAINTS, requirements, {"here": None}, constraints=True)
    assert not problems, "\n".join(problems)


def test_constraint_problems_are_found(tmp_path: Path) -> None:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(
        "pydantic==2.7.0\nmlx[cpu]==0.30.0\nscipy>=1.11\nscipy==1.11.0\ntqdm==4.0.0\n",
        encoding="utf-8",
    )
    requirements = [Requirement(text) for text in ("pydantic>=2.7", "tqdm>=4.66", "requests")]
    requirements.append(Requirement("mlx[cpu]>=0.30"))  # its extra is not looked for
    assert pin_problems(constraints, requirements, {"here": None}, constraints=True) == [
        "constraints.txt:3: scipy>=1.11 is not an exact == pin",
        "constraints.txt:2: mlx[cpu]==0.30.0: a constraint has no extras or marker",
        "here: scipy is pinned twice (constraints.txt:3, constraints.txt:4)",
        "here: constraints.txt:5: tqdm==4.0.0 breaks tqdm>=4.66",
        "here: requests is not pinned",
    ]


@pytest.mark.skipif(sys.platform != "linux", reason="the test environment is pinned on Linux")
def test_this_environment_is_the_pinned_one() -> None:
    """The suite runs in the environment the constraints describe: a package at another
    version means the venv was set up another way (or the pins were not updated after an
    upgrade), and a pass would not say the pinned environment passes."""
    from importlib.metadata import PackageNotFoundError, version

    build = {canonicalize_name(Requirement(text).name) for text in BUILD_REQUIREMENTS}
    drifted = []
    for name, pinned in _pinned_versions(TEST_CONSTRAINTS, None).items():
        if name in build:
            continue  # pinned for the isolated build, not installed (a venv may carry its own)
        try:
            installed = Version(version(name))
        except PackageNotFoundError:
            continue  # a pin for another platform's recipe (mlx-cpu on macOS)
        if installed != pinned:
            drifted.append(f"{name} {installed} (pinned {pinned})")
    assert not drifted, (
        f"installed versions differ from {TEST_CONSTRAINTS.relative_to(ROOT)}: "
        + ", ".join(drifted)
        + "; set up with the README's test command, or update the pins"
    )
