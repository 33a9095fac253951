"""Hypothesis profiles for the property tests, picked with ``HYPOTHESIS_PROFILE``.

* ``ci`` (default): 50 examples per test, derandomized and without the example database, so a
  CI run tests the same inputs every time and a failure reproduces locally.
* ``dev``: Hypothesis' usual 100 random examples, with the local example database.
* ``thorough``: 2000 examples per test, for a deliberate hunt before a release.

Deadlines are off in every profile: the machines running this are shared, and a slow example
is not a wrong one.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.errors import InvalidArgument

PROFILE_ENV = "HYPOTHESIS_PROFILE"
DEFAULT_PROFILE = "ci"

settings.register_profile(
    "ci",
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "thorough",
    max_examples=2000,
    deadline=None,
    # 2000 examples of rank-4 arrays can trip the "slow data generation" check on a busy host.
    suppress_health_check=[HealthCheck.too_slow],
)

_profile = os.environ.get(PROFILE_ENV, DEFAULT_PROFILE)
try:
    settings.load_profile(_profile)
except InvalidArgument as error:
    raise pytest.UsageError(
        f"{PROFILE_ENV}={_profile!r} is not a registered Hypothesis profile; use one of: ci, dev, thorough"
    ) from error
