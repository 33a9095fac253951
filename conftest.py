"""Root conftest: the project's layout has one, and this is all it holds.

The pytest plugin of the harness (options such as ``--tier``, the case matrix, the run's
fixture, the end-of-run report) lives in :mod:`bench.plugin` and is registered through the
``pytest11`` entry point in pyproject.toml: installing the package (every nox session does)
is what loads it. Run ``pytest --help`` and look for the ``quantbench`` group to see it is there.
"""
