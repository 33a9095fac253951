"""A content-addressed cache of trained models and converted artifacts, outside the repository.

Location: ``$QUANTBENCH_CACHE`` if set, else ``$XDG_CACHE_HOME/quantbench``, else
``~/.cache/quantbench``. An entry is a folder named ``<label>-<key>`` holding its files and a
``meta.json`` with the sha256 of each file and where the entry was built (``built_on``: testbed,
CPU model, UTC time; metadata, never part of a key). Entries are built in a staging folder and
renamed into place (never half-written), under a lock (built once when workers run in parallel), and
verified by hash when read: a corrupt entry is reported, discarded and rebuilt, not trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from bench import atomic, progress

META = "meta.json"


def cache_root() -> Path:
    """The cache folder, from the environment."""
    if os.environ.get("QUANTBENCH_CACHE"):
        return Path(os.environ["QUANTBENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "quantbench"


def key_of(payload: object) -> str:
    """A short stable hash of a JSON-able description of what an entry depends on."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def code_hash(module, only: Iterable[str] = ()) -> str:
    """Hash of a module's code, or of some definitions in it, blind to comments, docstrings and
    formatting.

    Cache keys and case definitions depend on what code does, so editing a docstring neither
    retrains a model nor makes a baseline "not comparable". The source is read from the module's
    file (as :func:`inspect.getsource` finds it), so a module object pointing at another file
    hashes that file.

    Args:
        module: The module.
        only: Names of top-level definitions (``"split"``) or of a class's members
            (``"Builder.splits"``) to hash instead of the whole module, each with its decorators.

    Raises:
        KeyError: A name in ``only`` is not defined in the module (a key must not silently
            stop covering what it names).
    """
    import inspect

    # Keys are asked for often (every case's artifact key hashes half a dozen modules): each file
    # is parsed once per version of it on disk.
    path = inspect.getsourcefile(module)
    stat = os.stat(path)
    memo = (path, stat.st_mtime_ns, stat.st_size, tuple(only))
    if memo not in _CODE_HASHES:
        _CODE_HASHES[memo] = _code_hash(module, tuple(only))
    return _CODE_HASHES[memo]


def definitions_of(module) -> tuple[str, ...]:
    """Names of the module's top-level functions and classes: its code, without its data."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(module))
    return tuple(node.name for node in tree.body
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))


# code_hash's memo: (file, mtime, size, definitions) -> hash.
_CODE_HASHES: dict[tuple, str] = {}


def _code_hash(module, only: tuple[str, ...]) -> str:
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(module))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    if not only:
        return key_of(ast.dump(tree, annotate_fields=False))
    return key_of([[ast.dump(node, annotate_fields=False) for node in _definitions(tree, name, module)]
                   for name in only])


def _definitions(tree, qualified: str, module) -> list:
    """The ``def``/``class`` nodes named ``qualified`` ("f" or "Class.member") in a module's tree
    (a property's getter and setter are both named)."""
    import ast

    scopes = [tree]
    for part in qualified.split("."):
        scopes = [node for scope in scopes for node in getattr(scope, "body", [])
                  if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                  and node.name == part]
        if not scopes:
            raise KeyError(f"{qualified} is not defined in {getattr(module, '__name__', module)}")
    return scopes


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def built_here() -> dict:
    """Where and when an entry is being built: this CPU's testbed and model, and the UTC time.

    Weights trained on two testbeds differ (float kernels round differently), so a report says
    where cached weights came from. Never part of a key: the same inputs make the same entry.
    """
    from bench import environment

    try:
        cpu = environment.cpu()
        testbed, model = cpu.get("testbed"), cpu.get("model")
    except ValueError:  # a machine no testbed row matches: the entry is still worth keeping
        testbed, model = None, None
    return {"testbed": testbed, "cpu": model,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def describe_origin(meta: dict) -> str:
    """Where a model entry's weights came from, in words, from its meta.json.

    ``weights_from`` (written by :mod:`bench.bundle`'s import) names the bundle and where it was
    trained; ``built_on`` where the entry itself was built; older entries record neither.
    """
    source = meta.get("weights_from")
    if isinstance(source, dict) and source.get("bundle"):
        where = source.get("built_on")
        trained = (f"trained on {_where(where)}" if isinstance(where, dict) and where.get("testbed")
                   else "where it was trained is not recorded")
        return f"bundle {str(source['bundle'])[:12]} ({trained})"
    built = meta.get("built_on")
    if isinstance(built, dict) and built.get("testbed"):
        date = str(built.get("date") or "")[:10]
        return f"cache, trained on {_where(built)}" + (f" {date}" if date else "")
    return "cache (where it was trained is not recorded)"


def _where(built: dict) -> str:
    return f"{built['testbed']} ({built['cpu']})" if built.get("cpu") else str(built["testbed"])


def log(message: str) -> None:
    """Shows a progress line live, on the terminal or stderr (see :func:`bench.progress.emit`)."""
    progress.emit(message)


class Cache:
    """One cache root; see the module docstring."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else cache_root()

    def entry_dir(self, kind: str, label: str, key: str) -> Path:
        return self.root / kind / f"{label}-{key}"

    def verify(self, entry: Path) -> str | None:
        """Returns why ``entry`` cannot be trusted, or None when every file matches its hash."""
        meta_path = entry / META
        if not meta_path.is_file():
            return "meta.json is missing"
        try:
            meta = json.loads(meta_path.read_text())
            files = meta["files"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            return f"meta.json is unreadable ({exc})"
        for name, digest in files.items():
            path = entry / name
            if not path.is_file():
                return f"{name} is missing"
            if file_sha256(path) != digest:
                return f"{name} does not match its recorded sha256"
        return None

    def read_meta(self, entry: Path) -> dict:
        return json.loads((entry / META).read_text())

    def weights_source(self, kind: str, label: str, key: str) -> str:
        """Where the weights of an entry came from (:func:`describe_origin`); "cache" when its
        meta.json cannot be read."""
        try:
            return describe_origin(self.read_meta(self.entry_dir(kind, label, key)))
        except (OSError, json.JSONDecodeError):
            return "cache"

    def get_or_build(
        self,
        kind: str,
        label: str,
        key: str,
        build: Callable[[Path], dict],
    ) -> tuple[Path, bool]:
        """Returns a verified entry folder, building it first if absent or corrupt.

        Args:
            kind: Sub-folder ("models", "artifacts").
            label: Human part of the name (e.g. ``vgg16-smoke``).
            key: Content hash of the inputs.
            build: Writes the entry's files into the folder it is given and returns extra metadata.

        Returns:
            The entry folder and whether it came from the cache (True) or was built now (False).
        """
        entry = self.entry_dir(kind, label, key)
        with atomic.file_lock(entry.with_name(entry.name + ".lock")):
            if entry.exists():
                problem = self.verify(entry)
                if problem is None:
                    return entry, True
                log(f"[cache] discarding corrupt entry {entry}: {problem}; rebuilding it")
                shutil.rmtree(entry)
            self._build(entry, label, key, build)
            return entry, False

    def replace(self, kind: str, label: str, key: str, build: Callable[[Path], dict]) -> Path:
        """Builds an entry even if one exists, and puts it in place of the old one.

        Only for a caller that was told to replace (``bench.bundle import --replace``): the
        harness itself never overwrites an entry that verifies.
        """
        entry = self.entry_dir(kind, label, key)
        with atomic.file_lock(entry.with_name(entry.name + ".lock")):
            self._build(entry, label, key, build)
        return entry

    @staticmethod
    def _build(entry: Path, label: str, key: str, build: Callable[[Path], dict]) -> None:
        with atomic.staging_dir(entry) as staging:
            extra = build(staging)
            files = {
                p.name: file_sha256(p) for p in sorted(staging.iterdir()) if p.name != META
            }
            meta = {"key": key, "label": label, "files": files, **extra, "built_on": built_here()}
            atomic.write_json(staging / META, meta)
