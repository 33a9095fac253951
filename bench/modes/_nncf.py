"""NNCF's post-training tools on ONNX files, the int8 paths OpenVINO recommends for its runtime.

NNCF's ONNX backend writes a single QDQ ``.onnx`` file, which OpenVINO reads like any other
(no IR step), so each OpenVINO artifact is one file as on the other backends. Both steps start
from the float32 ONNX export with its readable names and end with ``_onnx.package``, as ORT's
quantizers do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench import atomic
from bench.errors import ArtifactError, first_line
from bench.modes import _onnx, _onnx_names


def quantize(float_onnx: Path, path: Path, images: np.ndarray, what: str) -> None:
    """``nncf.quantize``: static int8, calibrated on every one of ``images`` (one per item).

    Choices, measured on the smoke tier (2,000 test images, OpenVINO's CPU plugin):

    * Preset PERFORMANCE (symmetric activations). MIXED (asymmetric activations) wrote the
      very same bytes for cnn and mobilenet: every quantized activation here is non-negative
      (the [0, 1] image, ReLU / ReLU6 outputs), where both give uint8 with zero point 0. NNCF
      advises MIXED for activations that go negative (GELU, ELU, PReLU), which none of the
      models has.
    * Bias correction off. NNCF's default fast bias correction, in its ONNX backend, shifted
      conv biases by up to 9 % of their range and cost the cnn 3.75 points (81.10 % against
      84.85 % float32; 85.05 % without it, and 85.20 % with it through NNCF's OpenVINO
      backend), and lowered mobilenet's top-1 agreement with float32 from 97.95 % to 95.30 %;
      vgg16 was unchanged (75.25 %). Without it NNCF and ORT's quantizer (no bias correction
      either) differ only in their range statistics.
    * Everything else NNCF's default, as a deployment gets it: per-channel symmetric weights,
      activation ranges as the mean over images of each image's min / max, the first layer's
      weights on a 7-bit range (the overflow fix for CPUs without VNNI).

    Raises:
        ArtifactError: NNCF failed.
    """
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

    model = _onnx_names.load_named(float_onnx)
    feed = model.graph.input[0].name
    dataset = nncf.Dataset(list(images), lambda image: {feed: image[None].astype(np.float32)})
    try:
        quantized = nncf.quantize(
            model, dataset, preset=nncf.QuantizationPreset.PERFORMANCE, subset_size=len(images),
            advanced_parameters=AdvancedQuantizationParameters(disable_bias_correction=True),
        )
    except Exception as exc:  # NNCF raises what its backends raise
        raise ArtifactError(f"NNCF quantization of {what} failed: {first_line(exc)}") from exc
    # Straight into ``path``, the cache's staging folder (see _onnx.quantize_static).
    atomic.write_bytes(path, quantized.SerializeToString())
    _onnx.package(path)


def compress_weights(float_onnx: Path, path: Path, what: str) -> None:
    """``nncf.compress_weights``: int8 weights (every Conv and MatMul), float activations.

    INT8_SYM, per channel: the grid of LiteRT's and ORT's dynamic-range modes (symmetric,
    zero point 0), so the three store the same kind of weights. nncf 3.4 writes each Conv's
    per-channel scale with the weight's trailing axes kept (shape ``(O, 1, 1)``), which opset 17
    does not allow (a DequantizeLinear scale is a scalar or 1-D) and OpenVINO's ONNX reader
    rejects ("Dequantization scale needs to be a scalar or a vector"); the scales are stored 1-D
    along the node's axis, the same values.

    Raises:
        ArtifactError: NNCF failed.
    """
    import nncf
    from onnx import numpy_helper

    model = _onnx_names.load_named(float_onnx)
    try:
        compressed = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_SYM)
    except Exception as exc:  # NNCF raises what its backends raise
        raise ArtifactError(f"NNCF weight compression of {what} failed: {first_line(exc)}") from exc
    initializers = {init.name: init for init in compressed.graph.initializer}
    for node in compressed.graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        for name in node.input[1:]:  # scale, and zero point where there is one
            values = numpy_helper.to_array(initializers[name])
            if values.ndim > 1:
                initializers[name].CopyFrom(numpy_helper.from_array(values.reshape(-1), name))
    atomic.write_bytes(path, compressed.SerializeToString())
    _onnx.package(path)
