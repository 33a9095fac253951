"""Backend ``openvino``: OpenVINO's CPU plugin reading ONNX files, one compiled model per batch size.

* **Files**: ONNX, read directly by the runtime (no IR conversion step). Formats ``openvino``,
  then ``onnx`` (``bench.formats``): modes without an ``openvino`` file of their own run ONNX
  Runtime's very file, so float32 and qat_int8 compare two runtimes on the same bytes; ptq_int8
  has its own NNCF file (``bench.modes._nncf``), because the runtime's recommended int8 path is
  NNCF's, not ORT's.
* **Precision**: ``INFERENCE_PRECISION_HINT`` is set on every load. The CPU plugin's default is
  bfloat16 wherever the CPU has AVX512-BF16 or AMX (measured on this AMD EPYC: the default hint
  reads ``bf16``), which silently turns a float32 case into a bfloat16 one (smoke cnn, here as
  on a Xeon with AMX: 84.95 % against 84.85 % float32). ``f32`` unless the mode computes in
  another precision (``Mode.compute_precision``; the bf16 mode passes ``bf16``). With ``f32``
  the float32 file's logits match ONNX Runtime's within 1.7e-5 on all three smoke models, with
  the same accuracy to the image.
* **Batches**: each batch size gets its own static-shape compiled model (the file's batch
  dimension reshaped to the batch), compiled on first use and kept in the runner, so that the
  plugin picks kernels for a known shape, as a deployment with a fixed batch does. The fixed,
  zero-padded evaluation batches of :func:`bench.backends.predict_batched` keep that to two
  compiles per pass (256 and, for batch invariance and latency, 1). Measured on every smoke
  artifact (float32, bf16, NNCF int8, QAT, weight-compressed; 48 images each): an image alone
  and inside a batch of 256 give the same logits, to the bit.
* **Crash safety** (:func:`unsupported`, :func:`facts`): OpenVINO's CPU plugin has crashed
  inside ``compile_model`` on some CPUs (a SIGFPE on AMD Zen 4, openvino issue #35943, reported
  for 2025.3 to 2026.1). Before the first case a subprocess compiles and runs a tiny model; if it dies, hangs
  or fails, every OpenVINO case is a skip naming the cause and the CPU, and the run goes on.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench import environment, formats
from bench.backends import BACKENDS, EVAL_BATCH, Backend, predict_batched
from bench.errors import ArtifactError, first_line

DEVICE = "CPU"
# ``Mode.compute_precision`` -> the capability the CPU plugin reports when it has kernels for it
# (OPTIMIZATION_CAPABILITIES); without it the plugin quietly runs float32 instead.
CAPABILITY = {"f32": "FP32", "bf16": "BF16", "f16": "FP16"}
# The /proc/cpuinfo flags behind the plugin's BF16 capability (either one suffices).
BF16_FLAGS = ("avx512_bf16", "amx_bf16")

# The start-up probe, run as ``python -c PROBE_CODE``: compiles and runs a 3x3 convolution with
# the plugin's float32 kernels and, where the plugin offers them, its bfloat16 kernels (the two
# precisions cases ask for), checks one output value and prints what the plugin reports, as
# JSON on one line. A constant so that tests can put a crashing or failing probe in its place.
PROBE_CODE = """
import json
import numpy as np
import openvino as ov
from openvino import opset13 as ops

core = ov.Core()
capabilities = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
image = ops.parameter([1, 1, 4, 4], np.float32, name="image")
kernel = ops.constant(np.ones((2, 1, 3, 3), np.float32))
conv = ops.convolution(image, kernel, [1, 1], [1, 1], [1, 1], [1, 1])
model = ov.Model([ops.relu(conv)], [image], "probe")
for precision in ["f32"] + (["bf16"] if "BF16" in capabilities else []):
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision})
    out = compiled(np.ones((1, 1, 4, 4), np.float32))[0]
    assert out.shape == (1, 2, 4, 4) and float(out[0, 0, 1, 1]) == 9.0, f"{precision}: wrong output"
print(json.dumps({
    "version": ov.get_version(),
    "capabilities": capabilities,
    "device": core.get_property("CPU", "FULL_DEVICE_NAME"),
    "default_precision": core.get_property("CPU", "INFERENCE_PRECISION_HINT").to_string(),
}))
"""
# Measured on this 2-core machine beside a training job: 0.9 s (most of it importing openvino).
# 120 s leaves a slow or swapping machine a hundredfold margin and still cuts a hung plugin off
# long before it could hold up a run noticeably.
PROBE_TIMEOUT_S = 120
# Environment variables the probe inherits: what finds Python's packages and the shared
# libraries, and what configures threads and OpenVINO itself, so that it sees the same runtime
# the cases will; nothing else of the caller's environment.
_PROBE_ENV_NAMES = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "LD_LIBRARY_PATH",
                    "VIRTUAL_ENV", "OMP_NUM_THREADS", "TBB_NUM_THREADS")
_PROBE_ENV_PREFIXES = ("OV_", "OPENVINO_")


def _probe_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k in _PROBE_ENV_NAMES or k.startswith(_PROBE_ENV_PREFIXES)}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _death(returncode: int) -> str:
    """``-8`` -> ``killed by signal SIGFPE``; anything else -> ``exited with status N``."""
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


@functools.cache
def probe() -> dict:
    """Runs :data:`PROBE_CODE` in a subprocess, once per process.

    Returns:
        ``{"ok": True, "version", "capabilities", "device", "default_precision"}`` from the
        probe, or ``{"ok": False, "error": <what happened, one line>}`` when it died of a signal,
        timed out, exited non-zero or printed something else than the expected JSON.
    """
    with tempfile.TemporaryDirectory(prefix="quantbench-ov-probe-") as cwd:
        try:
            done = subprocess.run([sys.executable, "-c", PROBE_CODE], stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, env=_probe_env(), cwd=cwd,
                                  timeout=PROBE_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"did not finish within {PROBE_TIMEOUT_S} s"}
        except OSError as exc:
            return {"ok": False, "error": f"could not start ({first_line(exc)})"}
    if done.returncode != 0:
        said = _last_line(done.stderr)
        return {"ok": False, "error": _death(done.returncode) + (f" ({said[:300]})" if said else "")}
    try:
        found = json.loads(_last_line(done.stdout))
        reported = {key: found[key] for key in ("version", "capabilities", "device", "default_precision")}
    except (ValueError, TypeError, KeyError):
        return {"ok": False, "error": f"printed no probe report (last line: {_last_line(done.stdout)[:200]!r})"}
    return {"ok": True, **reported}


def facts() -> dict:
    """The probe's report for the environment fingerprint: version, CPU plugin capabilities and
    default precision, or the probe's failure."""
    found = probe()
    if not found["ok"]:
        return {"probe_failed": found["error"]}
    return {"version": found["version"], "capabilities": sorted(found["capabilities"]),
            "default_precision": found["default_precision"]}


# Top-1 agreement floor of OpenVINO running another runtime's static int8 file (ONNX Runtime's
# QAT file) with the other backends: its int8 kernels round differently, measured 99.80 / 98.85 /
# 99.40 % agreement with ORT (cnn, mobilenet, vgg16, smoke). 0.98 sits below the lowest by about
# the spread. Its own NNCF files carry their floor where they are registered (bench.modes).
FOREIGN_INT8_AGREEMENT_FLOOR = 0.98


def agreement_floor(testbed, mode: str) -> float | None:
    """The floor of OpenVINO's pairs in ``mode`` where it runs another format's integer file."""
    from bench.modes import MODES

    foreign = formats.artifact_format(mode, "openvino") != FORMAT.name
    return FOREIGN_INT8_AGREEMENT_FLOOR if MODES.get(mode).integer and foreign else None


def unsupported(mode) -> str | None:
    """Why this machine cannot run ``mode`` on OpenVINO (a failed probe, a missing precision)."""
    found = probe()
    cpu = environment.cpu()
    if not found["ok"]:
        return (f"OpenVINO's start-up probe (compile and run a tiny model on the CPU plugin, in a "
                f"subprocess) {found['error']} on {cpu['model']}; every OpenVINO case is skipped so "
                "that the crash cannot take the run down")
    needed = CAPABILITY.get(mode.compute_precision, mode.compute_precision.upper())
    if needed in found["capabilities"]:
        return None
    reason = (f"OpenVINO's CPU plugin on {cpu['model']} reports no {needed} kernels "
              f"(capabilities: {', '.join(found['capabilities'])}), so it would run {mode.name} in "
              "float32 and measure nothing of it")
    if mode.compute_precision == "bf16" and not any(cpu["flags"].get(flag) for flag in BF16_FLAGS):
        reason += f"; /proc/cpuinfo lists neither {' nor '.join(BF16_FLAGS)}, one of which it needs"
    return reason


class OpenVINORunner:
    """An ONNX file on OpenVINO's CPU plugin, compiled once per batch size.

    Args:
        path: The ONNX file.
        threads: ``INFERENCE_NUM_THREADS`` (None: the plugin's default, every core).
        precision: ``INFERENCE_PRECISION_HINT`` ("f32", "bf16").

    Raises:
        ArtifactError: The file does not read, or the plugin cannot compile it.
    """

    def __init__(self, path: Path, threads: int | None, precision: str) -> None:
        import openvino as ov

        self.path = path
        self.config = {"INFERENCE_PRECISION_HINT": precision}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = threads
        self.core = ov.Core()
        try:
            self.model = self.core.read_model(str(path))
            self.image_shape = [dim.get_length() for dim in list(self.model.input(0).get_partial_shape())[1:]]
        except Exception as exc:  # the ONNX frontend raises its own exception types
            raise ArtifactError(
                f"{path} is not an ONNX model OpenVINO can read ({first_line(exc)}); delete it so it is rebuilt"
            ) from exc
        self._requests: dict[int, object] = {}
        # Compiled now, so that a file the plugin cannot compile fails at load, not mid-pass.
        self.request(1)

    def request(self, batch: int):
        """The infer request of the model compiled for ``batch`` images (compiled on first use)."""
        if batch not in self._requests:
            try:
                model = self.model.clone()
                model.reshape({model.input(0): [batch, *self.image_shape]})
                compiled = self.core.compile_model(model, DEVICE, self.config)
            except Exception as exc:  # the plugin raises RuntimeError subclasses of its own
                raise ArtifactError(
                    f"OpenVINO's CPU plugin cannot compile {self.path} at batch {batch} "
                    f"({first_line(exc)}); where the file is another backend's format, register "
                    "an exporter of the mode for format 'openvino' (bench.formats), else leave openvino out with --backends"
                ) from exc
            self._requests[batch] = compiled.create_infer_request()
        return self._requests[batch]

    def run_batch(self, images: np.ndarray) -> np.ndarray:
        # share_inputs: the runtime reads the caller's buffer in place (the call is synchronous);
        # outputs come back as copies (share_outputs is off), untouched by the next infer.
        outputs = self.request(len(images)).infer({0: np.ascontiguousarray(images, np.float32)}, share_inputs=True)
        return outputs[0]

    def predict(self, images: np.ndarray, batch: int = EVAL_BATCH) -> np.ndarray:
        return predict_batched(self.run_batch, images, batch)


def load(path: Path, threads: int | None = None, precision: str = "f32") -> OpenVINORunner:
    return OpenVINORunner(Path(path), threads, precision)


def raw_loop(runner: OpenVINORunner, batches: list[np.ndarray]):
    """The infer request of ``batches``' size, ``infer`` on each pre-made float32 batch."""
    request = runner.request(len(batches[0]))

    def loop() -> None:
        for batch in batches:
            request.infer({0: batch}, share_inputs=True)

    return loop


# Files made for OpenVINO alone (NNCF's quantization, the bf16 mode's file): ONNX, which
# ONNX Runtime can try too (the portability table), but no mode makes them for it.
FORMAT = formats.define("openvino", ".onnx", "an ONNX model made for OpenVINO (NNCF)", home="openvino")

SPEC = BACKENDS.register("openvino", Backend(
    name="openvino",
    description="OpenVINO, CPU plugin (oneDNN), ONNX files read directly",
    load=load,
    formats=("openvino", "onnx"),
    packages=("openvino", "nncf"),
    raw_loop=raw_loop,
    unsupported=unsupported,
    facts=facts,
    agreement_floor=agreement_floor,
))
