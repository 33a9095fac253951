"""Which cases a run is asked for, which of them the code declares it runs, and which this machine can.

One :class:`Selection` answers for the plan (:mod:`bench.plan`), the run (:mod:`bench.run`) and
publishing (:mod:`bench.publish`), so "declared" means one thing everywhere:

* **selected**: every (model, mode, backend) of the tier, models, modes and backends asked for;
* **declared**: selected, and neither the mode (its backends) nor the tier declares the case
  unsupported. A code change alters it; this machine does not. The plan estimates these, and a
  baselines update keeps an entry only while its case is declared;
* **runnable**: declared, and the backend does not say this machine lacks what the mode needs.
  The run judges these, and its per-case alpha divides by their number.
"""

from __future__ import annotations

import dataclasses
import itertools

from bench.backends import BACKENDS
from bench.models import MODELS
from bench.modes import MODES
from bench.tiers import Tier

Case = tuple[str, str, str]


@dataclasses.dataclass(frozen=True)
class Selection:
    """The tier and the models, modes and backends a run selected (each in the order given).

    Attributes:
        tier: The tier.
        models: Model names (registered; the plugin refuses others at start-up).
        modes: Mode names, likewise.
        backends: Backend names, likewise.
    """

    tier: Tier
    models: tuple[str, ...]
    modes: tuple[str, ...]
    backends: tuple[str, ...]

    @classmethod
    def of(cls, options) -> Selection:
        """The selection of a run's options (a :class:`bench.run.Options`)."""
        return cls(options.tier, tuple(options.models), tuple(options.modes), tuple(options.backends))

    def cases(self) -> list[Case]:
        """Every selected (model, mode, backend), model first, then mode, then backend."""
        return list(itertools.product(self.models, self.modes, self.backends))

    def declared_reason(self, model: str, mode: str, backend: str) -> str | None:
        """Why the code declares the case unsupported (the mode on that backend, or the tier), or
        None when it declares it runs. The same on every machine."""
        reason = MODES.get(mode).skip_reason(backend)
        if reason:
            return f"{mode} on {backend}: {reason}"
        reason = self.tier.skip_reason(model, mode)
        if reason:
            return f"{model}-{mode} in tier {self.tier.name}: {reason}"
        return None

    def unavailable_reason(self, mode: str, backend: str) -> str | None:
        """Why this machine cannot run ``mode`` on ``backend`` (the backend's own capability
        check, e.g. a CPU feature or a failed start-up probe), or None."""
        unsupported = BACKENDS.get(backend).unsupported
        return (unsupported(MODES.get(mode)) or None) if unsupported else None

    def declared(self) -> list[Case]:
        """The selected cases that no mode or tier declares unsupported (this machine not asked)."""
        return [case for case in self.cases() if self.declared_reason(*case) is None]

    def runnable(self) -> list[Case]:
        """The declared cases this machine can run."""
        return [case for case in self.declared() if self.unavailable_reason(case[1], case[2]) is None]

    def declares(self, model: str, mode: str, backend: str) -> bool:
        """Whether the tier still declares a case, selected or not (a baselines file holds cases
        outside the selection): its names are registered and nothing declares it unsupported."""
        return (model in MODELS and mode in MODES and backend in BACKENDS
                and self.declared_reason(model, mode, backend) is None)
