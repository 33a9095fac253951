"""Which quantized file runs where: every int8 ONNX file on every other ONNX runtime.

Not a gate on the numbers (runtimes that reject a file are the finding, shown in REPORT.md with
their one-line error), but on completeness: every file the run made is tried on every other
selected ONNX runtime, and every row says either what the file gave there or why it did not run.
"""

from __future__ import annotations

import pytest

from bench import formats
from bench.modes import MODES

pytestmark = pytest.mark.bench


def test_integer_onnx_files_on_every_onnx_runtime(bench_model, bench_run):
    model = bench_model
    rows = bench_run.portability(model)
    runtimes = [b for b in bench_run.options.backends if formats.runs_onnx(b)]
    if not rows:
        pytest.skip(f"{model}: needs int8 modes on at least two selected ONNX runtimes (selected: {runtimes})")
    for row in rows:
        print(f"\n{row['file']} on {row['runtime']}: "
              + (f"{100 * row['accuracy']:.2f} % (own {100 * row['file_accuracy']:.2f} %), "
                 f"agreement {100 * row['top1_agreement']:.2f} %" if row["runs"] else row["error"]))
    made = {row["file"] for row in rows}
    expected = {(f, r) for f in made for r in runtimes if not f.endswith(f"-{r}")}
    missing = expected - {(row["file"], row["runtime"]) for row in rows}
    assert not missing, f"files not tried: {sorted(missing)}"
    for row in rows:
        assert MODES.get(row["mode"]).weights == "int8"
        if row["runs"]:
            assert 0.0 <= row["top1_agreement"] <= 1.0 and 0.0 <= row["accuracy"] <= 1.0, row
        else:
            assert row["error"].strip(), f"{row['file']} on {row['runtime']} failed without saying why"
