"""Looking things up in a results dict, for the report's sections and its plots alike.

Every lookup tolerates missing optional data: a results file of an older schema, or of a run that
measured less, gives None or an empty list, never an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bench.report.format import is_number
from bench.results import case_parts, model_order_key, sort_cases

# Modes whose per-layer error against float includes training drift, not only quantization.
DRIFTING_MODES = ("qat_int8",)


def sorted_cases(results: Mapping[str, Any]) -> list[dict]:
    """The cases of ``results`` in model, mode, backend order."""
    return sort_cases(results.get("cases") or [])


def find_case(results: Mapping[str, Any], model: str, mode: str, backend: str) -> dict | None:
    """The case with these names that has an accuracy (a skipped case has none), or None."""
    for case in results.get("cases") or []:
        if case_parts(case) == (model, mode, backend) and is_number(case.get("accuracy")):
            return case
    return None


def model_names(results: Mapping[str, Any]) -> list[str]:
    """Every model named in ``results``, in display order."""
    names = set((results.get("models") or {}).keys())
    names.update(case_parts(case)[0] for case in results.get("cases") or [])
    return sorted(names, key=model_order_key)


def model_params(results: Mapping[str, Any], model: str) -> Any:
    """The model's parameter count, from ``models`` or else from any of its cases."""
    params = ((results.get("models") or {}).get(model) or {}).get("params")
    if is_number(params):
        return params
    for case in results.get("cases") or []:
        if case_parts(case)[0] == model and is_number(case.get("params")):
            return case["params"]
    return None


def snr_sort_key(layer: Mapping[str, Any]) -> float:
    """Sort key putting the lowest SNR first, and layers without a number last.

    An exact layer has an infinite SNR, which sorts last too, as it should.
    """
    snr = layer.get("snr_db")
    is_real = isinstance(snr, int | float) and not isinstance(snr, bool) and not math.isnan(snr)
    return float(snr) if is_real else math.inf


def worst_case_per_model(layer_errors: Mapping[str, Any],
                         results: Mapping[str, Any]) -> dict[str, str]:
    """For each model, the case id whose lowest layer SNR is the lowest of that model's cases.

    QAT cases do not compete: their layers are compared with the float model *before*
    fine-tuning, so their SNR mixes fine-tuning drift with quantization error (measured: the
    smoke mobilenet's QAT logits sit at 7.6 dB against float, 29.6 dB against the QAT model).
    """
    by_id = {case["id"]: case for case in results.get("cases") or []}
    worst: dict[str, tuple[float, str]] = {}
    for case_id, layers in layer_errors.items():
        if not isinstance(layers, list) or not layers:
            continue
        model, mode, _ = case_parts(by_id.get(case_id, {"id": case_id}))
        if mode in DRIFTING_MODES:
            continue
        lowest = min(snr_sort_key(layer) for layer in layers if isinstance(layer, dict))
        if model not in worst or (lowest, case_id) < worst[model]:
            worst[model] = (lowest, case_id)
    return {model: worst[model][1] for model in sorted(worst, key=model_order_key)}
