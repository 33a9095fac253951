"""tox.ini and noxfile.py are one task runner story: every tox env runs what its nox session runs.

The noxfile is imported with a stand-in for the ``nox`` module (the test environment has no nox),
and each session is called with a session object that records what it installs and runs, once
without arguments and once with one; tox.ini is read with :mod:`configparser` and its
``{posargs}`` filled in the same two ways. Every tox env must be a nox session that runs the same
commands with the same arguments, installed from the same lock (or the same pinned tools), and
every nox session tox does not mirror is listed here with the reason.
"""

from __future__ import annotations

import configparser
import glob
import importlib.util
import re
import shlex
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Stands for whatever the user passes after `--`.
POSARG = "--user-argument"
# nox sessions tox does not offer, and why.
NOX_ONLY = {
    "ab": "the A/B gate exports git commits and drives two bench runs itself: one entry point is enough",
    "report": "re-rendering and comparing reports is `python -m bench.report`, with no environment of its own",
    "lock": "re-resolving the lock needs uv (`uv pip compile`), which tox does not bring",
}
# The check every installing nox session runs first (noxfile._ensure_dataset); tox's commands_pre.
DATASET_CHECK = ["python", "-m", "bench.data", "--download"]


class Refused(Exception):
    """A nox session called ``session.error``: it refuses to run with these arguments."""


class RecordingSession:
    """What a nox session asked for, in order: ``installs`` and ``runs`` (argument lists)."""

    def __init__(self, posargs: list[str]) -> None:
        self.posargs = list(posargs)
        self.installs: list[list[str]] = []
        self.runs: list[list[str]] = []

    def install(self, *args: str, **_: object) -> None:
        self.installs.append(list(args))

    def run(self, *args: str, **_: object) -> str:
        self.runs.append(list(args))
        return "Fashion-MNIST verified"  # what `python -m bench.data` says when the data are there

    def error(self, message: str) -> None:
        raise Refused(message)

    def warn(self, message: str) -> None:
        pass

    def notify(self, name: str) -> None:
        pass


@pytest.fixture(scope="module")
def noxfile():
    """noxfile.py imported with a stand-in ``nox`` module; its sessions in ``SESSIONS``."""
    sessions = {}

    def session(**_: object):
        def register(function):
            sessions[function.__name__] = function
            return function
        return register

    stand_in = types.ModuleType("nox")
    stand_in.session = session
    stand_in.options = types.SimpleNamespace()
    stand_in.Session = RecordingSession
    saved = sys.modules.get("nox")
    sys.modules["nox"] = stand_in
    try:
        spec = importlib.util.spec_from_file_location("quantbench_noxfile", ROOT / "noxfile.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            sys.modules.pop("nox", None)
        else:
            sys.modules["nox"] = saved
    module.SESSIONS = sessions
    return module


@pytest.fixture(scope="module")
def tox() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "tox.ini", encoding="utf-8")
    return parser


def tox_envs(tox: configparser.ConfigParser) -> list[str]:
    return [section.split(":", 1)[1] for section in tox.sections() if section.startswith("testenv:")]


def tox_setting(tox: configparser.ConfigParser, env: str, key: str) -> str:
    """An env's setting, else [testenv]'s (tox's inheritance), else ""."""
    for section in (f"testenv:{env}", "testenv"):
        if tox.has_option(section, key):
            return tox.get(section, key)
    return ""


def tox_commands(text: str, posargs: list[str]) -> list[list[str]]:
    """tox's command lines with ``{posargs}`` / ``{posargs:default}`` filled in as tox does; an
    ``sh -c 'CMD'`` line is ``CMD`` with its globs expanded from the repository root."""
    def fill(match: re.Match) -> str:
        return shlex.join(posargs) if posargs else (match.group(1) or "")

    commands = []
    for line in filter(None, (line.strip() for line in text.splitlines())):
        words = shlex.split(re.sub(r"\{posargs(?::([^}]*))?\}", fill, line))
        if words[:2] == ["sh", "-c"]:
            inner = shlex.split(words[2])
            words = [expanded for word in inner
                     for expanded in (sorted(glob.glob(word, root_dir=ROOT)) if "*" in word else [word])]
        commands.append(words)
    return commands


def nox_calls(noxfile, name: str, posargs: list[str], monkeypatch) -> RecordingSession | None:
    """The session's installs and runs with ``posargs``; None where it refuses them."""
    # The lint session's actionlint step depends on the machine (GitHub Actions, one on PATH);
    # tox's lint leaves it out by design (its description says so). Take the plain machine.
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.setattr(noxfile.shutil, "which", lambda _: None)
    session = RecordingSession(posargs)
    try:
        noxfile.SESSIONS[name](session)
    except Refused:
        return None
    return session


def test_every_nox_session_is_a_tox_env_or_says_why_not(noxfile, tox):
    assert set(noxfile.SESSIONS) - set(tox_envs(tox)) == set(NOX_ONLY)
    assert set(tox_envs(tox)) <= set(noxfile.SESSIONS), "a tox env without its nox session"


def command_drift(noxfile, tox, env: str, posargs: list[str], monkeypatch) -> list[str]:
    """How tox's ``env`` runs other commands than its nox session with ``posargs``; empty when none."""
    session = nox_calls(noxfile, env, posargs, monkeypatch)
    if session is None:  # nox refuses to run without arguments; tox hands the tool none
        return []
    setup = [run for run in session.runs if run == DATASET_CHECK]
    commands = [run for run in session.runs if run != DATASET_CHECK]
    problems = []
    for key, expected in (("commands", commands), ("commands_pre", setup)):
        found = tox_commands(tox_setting(tox, env, key), posargs)
        if found != expected:
            problems.append(f"tox -e {env} {key} with arguments {posargs}: {found}; nox -s {env}: {expected}")
    return problems


def install_drift(noxfile, tox, env: str, monkeypatch) -> list[str]:
    """How tox's ``env`` installs otherwise than its nox session; empty when it does not."""
    session = nox_calls(noxfile, env, [POSARG], monkeypatch)
    deps = [line.strip() for line in tox_setting(tox, env, "deps").splitlines() if line.strip()]
    if tox_setting(tox, env, "skip_install") == "true":
        nox_installs = sorted(arg for install in session.installs for arg in install)
        return [] if nox_installs == sorted(deps) else [f"tox -e {env} deps {deps}; nox -s {env} installs {nox_installs}"]
    # The lock, checked against its hashes (pip requires them once any is given), then the
    # package itself, editable.
    expected = [["--require-hashes", "-r", noxfile.LOCK], ["--no-deps", "--no-build-isolation", "-e", "."]]
    problems = [] if session.installs == expected else [f"nox -s {env} installs {session.installs}, not the lock"]
    if deps != [f"-r {noxfile.LOCK}"]:
        problems.append(f"tox -e {env} deps {deps}, not -r {noxfile.LOCK}")
    if tox_setting(tox, env, "package") != "editable":
        problems.append(f"tox -e {env} does not install the package editable, as nox does")
    return problems


@pytest.mark.parametrize("posargs", [[], [POSARG]], ids=["no-arguments", "with-arguments"])
def test_each_tox_env_runs_its_nox_sessions_commands(noxfile, tox, posargs, monkeypatch):
    problems = [p for env in tox_envs(tox) for p in command_drift(noxfile, tox, env, posargs, monkeypatch)]
    assert not problems, "\n".join(problems)


def test_each_tox_env_installs_what_its_nox_session_installs(noxfile, tox, monkeypatch):
    problems = [p for env in tox_envs(tox) for p in install_drift(noxfile, tox, env, monkeypatch)]
    assert not problems, "\n".join(problems)
