"""Checks that requirements.lock installs on every platform it is meant for, wheel by wheel.

``python -m bench.lockcheck wheels [LOCK]`` asks the package index, for every ``name==version``
the lock pins, which files that release has, and checks that on each target platform (Linux
x86_64 and aarch64, CPython 3.11: :data:`DEFAULT_PLATFORMS`) there is a wheel pip would install
there *and* that its sha256 is among the lock's ``--hash`` lines for the package: with
``--require-hashes`` that is what makes the lock install there, not merely resolve. A wheel whose
Requires-Python excludes every CPython 3.11 does not count: pip (and so tox) refuses it, even
though uv, which ignores Requires-Python upper bounds, installs it. One line per problem; exit
status 1 if any, 2 when the lock cannot be read or the index cannot be reached.

``python -m bench.lockcheck same-pins LOCK OTHER`` compares the ``name==version`` sets of two
lock files (``nox -s lock`` resolves the lock for x86_64, resolves it again for aarch64 starting
from its pins, and requires both to pin the same releases): exit 1 and the differences if not.

Why wheels only: a source distribution would be built on the runner, with whatever compiler and
flags it has, so two machines would not run the same bytes; every locked package has wheels.

The index is ``--index-url``, else ``$PIP_INDEX_URL``, else ``$UV_DEFAULT_INDEX``, else PyPI, read
through the Simple API (PEP 691 JSON, or the PEP 503 HTML page where the index serves only that),
which every index (PyPI, a mirror, a proxy) serves.

Tag compatibility and markers are decided by ``packaging`` (the library pip vendors), for a
platform named as uv names it (``x86_64-manylinux_2_28``): the manylinux tags of that glibc and
every older one, as pip on such a system accepts them.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from html.parser import HTMLParser
from pathlib import Path

from bench.errors import BenchError

LOCK = "requirements.lock"
PYTHON = (3, 11)
# The platforms the lock serves, named as uv's --python-platform names them. x86_64: the glibc
# the lock has always been resolved for. aarch64: 2.35, because openvino 2026.4's only aarch64
# wheel is manylinux_2_35 (Ubuntu 22.04 and later, Debian 12 and later; GitHub's
# ubuntu-24.04-arm runner has 2.39); every other locked package has an older-glibc one.
DEFAULT_PLATFORMS = ("x86_64-manylinux_2_28", "aarch64-manylinux_2_35")
DEFAULT_INDEX = "https://pypi.org/simple"
INDEX_ENV = ("PIP_INDEX_URL", "UV_DEFAULT_INDEX")
# Index requests: a few at a time (the 78 locked projects take 5 to 8 s so), each retried on a
# network error.
FETCH_THREADS = 8
FETCH_TIMEOUT_S = 60
FETCH_TRIES = 3
# The patch releases a Requires-Python is tried against (3.11.0 ... 3.11.49): more than any minor
# version of CPython has had.
PATCH_RELEASES = 50
# PEP 691 content negotiation: JSON preferred, the HTML page accepted.
ACCEPT = ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
          "text/html;q=0.01")
# The oldest glibc minor each architecture's manylinux tags go down to (PEP 600 and pip: 2_5 is
# manylinux1 on x86; other architectures start at manylinux2014, 2_17).
OLDEST_GLIBC_MINOR = {"x86_64": 5, "i686": 5}
OLDEST_GLIBC_MINOR_OTHER = 17
# PEP 599/571/513 names of glibc 2.17, 2.12 and 2.5, which pip accepts beside the PEP 600 ones.
LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
_PLATFORM = re.compile(r"(?P<arch>[a-z0-9_]+?)-manylinux_2_(?P<minor>\d+)")
_PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*(?P<version>[^\s;]+)"
                  r"\s*(?:;\s*(?P<marker>.+?))?\s*")
_HASH = re.compile(r"--hash[= ]sha256:(?P<hex>[0-9a-f]{64})")


class LockError(BenchError):
    """The lock cannot be read, or the package index cannot be reached."""


@dataclasses.dataclass(frozen=True)
class Pin:
    """One locked requirement: ``name==version``, its marker and its allowed sha256 hashes."""

    name: str
    version: str
    marker: str | None
    hashes: frozenset[str]

    @property
    def pinned(self) -> str:
        return f"{self.name}=={self.version}"


@dataclasses.dataclass(frozen=True)
class Target:
    """A platform the lock must install on: Linux, an architecture, a glibc, a CPython version."""

    arch: str
    glibc_minor: int
    python: tuple[int, int] = PYTHON

    @classmethod
    def parse(cls, name: str) -> Target:
        """A target from uv's platform name, ``ARCH-manylinux_2_M``."""
        found = _PLATFORM.fullmatch(name)
        if not found:
            raise LockError(f"platform {name!r} is not of the form ARCH-manylinux_2_M "
                            f"(e.g. {DEFAULT_PLATFORMS[1]})")
        return cls(found["arch"], int(found["minor"]))

    @property
    def name(self) -> str:
        return f"{self.arch}-manylinux_2_{self.glibc_minor} CPython {self.python[0]}.{self.python[1]}"

    def platform_tags(self) -> list[str]:
        """The platform tags pip accepts on this system, most specific first."""
        oldest = OLDEST_GLIBC_MINOR.get(self.arch, OLDEST_GLIBC_MINOR_OTHER)
        tags = []
        for minor in range(self.glibc_minor, oldest - 1, -1):
            tags.append(f"manylinux_2_{minor}_{self.arch}")
            if minor in LEGACY_MANYLINUX:
                tags.append(f"{LEGACY_MANYLINUX[minor]}_{self.arch}")
        return [*tags, f"linux_{self.arch}"]

    def supported_tags(self) -> frozenset:
        """Every wheel tag (``packaging.tags.Tag``) CPython of this version accepts here."""
        from packaging import tags

        platforms = self.platform_tags()
        interpreter = f"cp{self.python[0]}{self.python[1]}"
        return frozenset([*tags.cpython_tags(self.python, [interpreter], platforms),
                          *tags.compatible_tags(self.python, interpreter, platforms)])

    def environment(self) -> dict[str, str]:
        """The PEP 508 marker variables of this platform."""
        version = f"{self.python[0]}.{self.python[1]}"
        return {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
                "platform_machine": self.arch, "implementation_name": "cpython",
                "platform_python_implementation": "CPython", "python_version": version,
                "python_full_version": f"{version}.0", "implementation_version": f"{version}.0",
                "extra": ""}

    def applies(self, pin: Pin) -> bool:
        """Whether the lock installs ``pin`` on this platform (its marker holds here)."""
        if not pin.marker:
            return True
        from packaging.markers import Marker

        return Marker(pin.marker).evaluate(self.environment())


@dataclasses.dataclass(frozen=True)
class IndexFile:
    """One file of a project on the index, with its Requires-Python as the index states it."""

    filename: str
    sha256: str | None
    requires_python: str | None = None


# ---------------------------------------------------------------------------------------------
# The lock


def canonical(name: str) -> str:
    """PEP 503's normalized project name (``Typing_Extensions`` -> ``typing-extensions``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """Lines of a requirements file with comments dropped and ``\\`` continuations joined,
    each with the number of the line it starts on."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined = (pending + line).strip()
        pending = ""
        if joined:
            yield start, joined
    if pending.strip():
        yield start, pending.strip()


def parse_lock(text: str, source: str = LOCK) -> list[Pin]:
    """Every pinned requirement of a hashed lock (``uv pip compile --generate-hashes`` output).

    Raises:
        LockError: A requirement is not pinned with ``==``, has no hash, or is pinned twice
            without markers that tell the pins apart.
    """
    pins: list[Pin] = []
    for number, line in logical_lines(text):
        if line.startswith("-"):  # an option line (--index-url, --find-links): no requirement
            continue
        requirement, _, _ = line.partition(" --hash")
        found = _PIN.fullmatch(requirement.strip())
        if not found:
            raise LockError(f"{source}:{number}: {requirement.strip()!r} is not pinned as name==version; "
                            "re-create the lock with `nox -s lock`")
        hashes = frozenset(match["hex"] for match in _HASH.finditer(line))
        if not hashes:
            raise LockError(f"{source}:{number}: {found['name']}=={found['version']} has no --hash=sha256 "
                            "line, so --require-hashes refuses the lock; re-create it with `nox -s lock`")
        pins.append(Pin(canonical(found["name"]), found["version"], found["marker"], hashes))
    seen: dict[str, Pin] = {}
    for pin in pins:
        if pin.name in seen and not (pin.marker and seen[pin.name].marker):
            raise LockError(f"{source}: {pin.name} is pinned twice ({seen[pin.name].version} and "
                            f"{pin.version}) without markers that choose between them")
        seen[pin.name] = pin
    return pins


def read_lock(path: Path) -> list[Pin]:
    """:func:`parse_lock` of a file, with the error naming it."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise LockError(f"cannot read {path} ({exc.strerror}); run from the repository root or name the lock") from None
    return parse_lock(text, str(path))


def pin_differences(a: Sequence[Pin], b: Sequence[Pin], a_name: str, b_name: str) -> list[str]:
    """How two locks' ``name==version`` (and marker) sets differ, a line per package."""
    def releases(pins: Sequence[Pin]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for pin in pins:
            found.setdefault(pin.name, []).append(pin.version + (f" ; {pin.marker}" if pin.marker else ""))
        return {name: sorted(versions) for name, versions in found.items()}

    left, right = releases(a), releases(b)
    lines = []
    for name in sorted(set(left) | set(right)):
        if left.get(name) != right.get(name):
            lines.append(f"{name}: {', '.join(left.get(name, [])) or 'absent'} in {a_name}, "
                         f"{', '.join(right.get(name, [])) or 'absent'} in {b_name}")
    return lines


# ---------------------------------------------------------------------------------------------
# Wheels against targets


def wheel_release(filename: str) -> tuple[str, str, frozenset] | None:
    """``(project, version, tags)`` of a wheel file name; None for anything else (an sdist, or a
    name that is no valid wheel name, which pip skips too)."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    if not filename.endswith(".whl"):
        return None
    try:
        name, version, _, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return None
    return str(name), str(version), frozenset(tags)


def same_version(a: str, b: str) -> bool:
    """Whether two version strings name the same release (``1.0`` and ``1.0.0`` do)."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def admits(requires_python: str | None, python: tuple[int, int]) -> bool:
    """Whether a Requires-Python admits some release of CPython ``python`` (3.11.0, 3.11.1, ...),
    as pip checks it against the running interpreter; an unparsable one is ignored, as pip does."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    if not requires_python:
        return True
    try:
        specifier = SpecifierSet(requires_python)
    except InvalidSpecifier:
        return True
    return any(specifier.contains(f"{python[0]}.{python[1]}.{patch}", prereleases=True)
               for patch in range(PATCH_RELEASES))


def problems_of(pin: Pin, files: Sequence[IndexFile], targets: Sequence[Target],
                supported: Mapping[Target, frozenset] | None = None) -> list[str]:
    """Why ``pin`` would not install from its wheels on each target: one line per target where it
    has no wheel whose tags fit, none whose Requires-Python admits the target's Python, or none
    whose hash the lock lists. Empty when it installs everywhere."""
    supported = supported or {target: target.supported_tags() for target in targets}
    wheels = []
    for file in files:
        release = wheel_release(file.filename)
        if release and canonical(release[0]) == pin.name and same_version(release[1], pin.version):
            wheels.append((file, release[2]))
    problems = []
    for target in targets:
        if not target.applies(pin):
            continue
        fitting = [file for file, tags in wheels if tags & supported[target]]
        runnable = [file for file in fitting if admits(file.requires_python, target.python)]
        if fitting and not runnable:
            # uv drops Requires-Python upper bounds when it resolves and installs; pip enforces them.
            problems.append(f"{pin.pinned}: its {target.name} wheel(s) require Python "
                            f"{' or '.join(sorted({str(f.requires_python) for f in fitting}))}, which no "
                            f"CPython {target.python[0]}.{target.python[1]} satisfies: pip (and tox) refuse "
                            "them, only uv installs them (it ignores upper bounds); constrain the pin to a "
                            "release that supports this Python and re-create the lock")
            continue
        fitting = runnable
        if not fitting:
            offered = sorted({tag.platform for _, tags in wheels for tag in tags
                              if "linux" in tag.platform and tag.platform.endswith(target.arch)})
            problems.append(f"{pin.pinned}: no wheel for {target.name}; its Linux {target.arch} wheels: "
                            f"{', '.join(offered) or 'none'}" + ("" if wheels else " (it has no wheels at all)"))
        elif not any(file.sha256 in pin.hashes for file in fitting):
            problems.append(f"{pin.pinned}: the lock lists no hash of its {target.name} wheel(s) "
                            f"({', '.join(file.filename for file in fitting)}), so --require-hashes "
                            "refuses them there; re-create the lock with `nox -s lock`")
    return problems


def check(pins: Sequence[Pin], files: Mapping[str, Sequence[IndexFile]], targets: Sequence[Target]) -> list[str]:
    """Every problem of every pin (:func:`problems_of`), in lock order."""
    supported = {target: target.supported_tags() for target in targets}
    return [line for pin in pins for line in problems_of(pin, files.get(pin.name, ()), targets, supported)]


# ---------------------------------------------------------------------------------------------
# The index


class _Links(HTMLParser):
    """The file links of a PEP 503 project page, with the sha256 from each URL's fragment."""

    def __init__(self) -> None:
        super().__init__()
        self.files: list[IndexFile] = []
        self._href: str | None = None
        self._text: list[str] = []
        self._requires: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            found = dict(attrs)
            self._href, self._text, self._requires = found.get("href"), [], found.get("data-requires-python")

    def handle_data(self, data):
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag != "a" or self._href is None:
            return
        url = urllib.parse.urlsplit(self._href)
        digest = re.fullmatch(r"sha256=([0-9a-f]{64})", url.fragment)
        name = "".join(self._text).strip() or Path(url.path).name
        self.files.append(IndexFile(name, digest.group(1) if digest else None, self._requires))
        self._href = None


def parse_project_page(body: bytes, content_type: str) -> list[IndexFile]:
    """The files of a Simple API project page, JSON (PEP 691) or HTML (PEP 503)."""
    if "json" in content_type:
        document = json.loads(body)
        return [IndexFile(f["filename"], (f.get("hashes") or {}).get("sha256"), f.get("requires-python"))
                for f in document["files"]]
    links = _Links()
    links.feed(body.decode("utf-8", "replace"))
    return links.files


def index_url(given: str | None = None) -> str:
    """The index to ask: ``given``, else the first of :data:`INDEX_ENV` that is set, else PyPI."""
    for url in (given, *(os.environ.get(name) for name in INDEX_ENV)):
        if url:
            return url.rstrip("/")
    return DEFAULT_INDEX


def fetch_files(name: str, index: str) -> list[IndexFile]:
    """The files the index lists for project ``name``."""
    url = f"{index}/{canonical(name)}/"
    request = urllib.request.Request(url, headers={"Accept": ACCEPT, "User-Agent": "quantbench-lockcheck"})
    for attempt in range(FETCH_TRIES):
        try:
            with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as response:
                return parse_project_page(response.read(), response.headers.get("Content-Type", ""))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []  # the check then says the pin has no wheel there
            error = exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            error = exc
        time.sleep(2 ** attempt)
    raise LockError(f"cannot read {url} ({error}); check the network, or point --index-url "
                    f"(or ${INDEX_ENV[0]}) at an index this machine reaches")


def fetch_all(names: Iterable[str], index: str) -> dict[str, list[IndexFile]]:
    """:func:`fetch_files` of every project, a few at a time."""
    names = sorted(set(names))
    with concurrent.futures.ThreadPoolExecutor(FETCH_THREADS) as pool:
        return dict(zip(names, pool.map(lambda name: fetch_files(name, index), names), strict=True))


# ---------------------------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.lockcheck wheels|same-pins`` (see the module docstring).

    Returns:
        0 when the lock passes, 1 with a line per problem, 2 when it could not be checked.
    """
    parser = argparse.ArgumentParser(prog="python -m bench.lockcheck", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    wheels = commands.add_parser("wheels", help="check that every pin has a hashed wheel on every platform")
    wheels.add_argument("lock", nargs="?", type=Path, default=Path(LOCK))
    wheels.add_argument("--platform", action="append", dest="platforms",
                        help=f"ARCH-manylinux_2_M, repeatable (default: {' and '.join(DEFAULT_PLATFORMS)})")
    wheels.add_argument("--index-url", default=None,
                        help=f"Simple API root (default: ${INDEX_ENV[0]}, ${INDEX_ENV[1]}, else {DEFAULT_INDEX})")
    same = commands.add_parser("same-pins", help="check that two locks pin the same releases")
    same.add_argument("lock", type=Path)
    same.add_argument("other", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "same-pins":
            differences = pin_differences(read_lock(args.lock), read_lock(args.other), str(args.lock), str(args.other))
            for line in differences:
                print(line)
            print(f"same pins: {'no, ' + str(len(differences)) + ' differ' if differences else 'yes'} "
                  f"({args.lock} and {args.other})")
            return 1 if differences else 0
        targets = [Target.parse(name) for name in args.platforms or DEFAULT_PLATFORMS]
        pins = read_lock(args.lock)
        index = index_url(args.index_url)
        started = time.monotonic()
        problems = check(pins, fetch_all((pin.name for pin in pins), index), targets)
    except LockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in problems:
        print(line)
    summary = (f"{len(pins)} pins of {args.lock}, {len(targets)} platforms ({'; '.join(t.name for t in targets)}), "
               f"index {index}, {time.monotonic() - started:.1f} s")
    if problems:
        print(f"lock check: {len(problems)} problem(s); {summary}")
        return 1
    print(f"lock check: every pin has a wheel whose hash the lock lists, on every platform; {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
