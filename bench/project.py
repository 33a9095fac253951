"""The project a run belongs to: the folder its reports, baselines and lock are found in.

quantbench is a package other repositories install; what a run reads and writes belongs to the
repository that runs pytest, not to wherever quantbench is installed. That folder, the project
root, is pytest's rootdir (the folder of the ini file pytest found: pyproject.toml with
``[tool.pytest.ini_options]``, pytest.ini, tox.ini, setup.cfg), or the ``quantbench_root`` ini
setting, relative to that ini file. Below it:

    reports/<tier>/              the committed reports (written only with --publish-reports)
    reports/local/<tier>/        every other run's reports (the default --reports-dir)
    baselines/<testbed>/<tier>.json
    requirements.lock            hashed into every fingerprint; a project without one records None

In quantbench's own checkout the root is the checkout, so those are the files they always were.
"""

from __future__ import annotations

from pathlib import Path

# The ini setting that names the project root (a path relative to the ini file's folder).
ROOT_INI = "quantbench_root"
# The committed reports, rewritten only with --publish-reports (`nox -s publish`, `update_baselines`).
PUBLISHED_REPORTS = "reports"
# Where every other run writes, beside the committed ones so a newcomer finds it; a project lists
# it in .gitignore (this one does), so a local run leaves `git status` clean.
LOCAL_REPORTS = "local"
# The lock whose sha256 goes into the environment fingerprint.
LOCK_NAME = "requirements.lock"


def root(rootpath: Path, inipath: Path | None, configured: str) -> Path:
    """The project root of a pytest run.

    Args:
        rootpath: pytest's rootdir (``config.rootpath``).
        inipath: The ini file pytest read (``config.inipath``), or None.
        configured: The ``quantbench_root`` ini value ("" when unset).
    """
    if not configured:
        return Path(rootpath).resolve()
    base = Path(inipath).parent if inipath is not None else Path(rootpath)
    return (base / configured).resolve()


def published_reports(project_root: Path) -> Path:
    """The committed reports folder of the project (``<tier>/`` below it)."""
    return Path(project_root) / PUBLISHED_REPORTS


def local_reports(project_root: Path) -> Path:
    """The default --reports-dir: ignored by git in a project that lists it in .gitignore."""
    return published_reports(project_root) / LOCAL_REPORTS


# The session of quantbench's own noxfile that re-records baselines (and the committed reports).
NOX_UPDATE_SESSION = "update_baselines"


def update_command(project_root: Path | None, tier: str, models: list[str] | None = None) -> str:
    """The command that re-records the baselines of ``tier`` (only of ``models`` if given) in
    the project at ``project_root``: its nox session where its noxfile has one (quantbench's own
    checkout), else pytest itself, which works in any project (None: the root is not known)."""
    selection = f" --models {','.join(models)}" if models else ""
    noxfile = Path(project_root) / "noxfile.py" if project_root is not None else None
    if noxfile is not None and noxfile.is_file() and f"def {NOX_UPDATE_SESSION}(" in noxfile.read_text():
        return f"nox -s {NOX_UPDATE_SESSION} -- --tier {tier}{selection}"
    return f"pytest --pyargs bench.cases --tier {tier}{selection} --update-baselines"


def lock_file(project_root: Path) -> Path:
    """The project's lock file (which may not exist: then the fingerprint records None)."""
    return Path(project_root) / LOCK_NAME
