"""Backend ``onnxruntime``: an ONNX Runtime session on the CPU execution provider, batched.

* **Stored weights** (:func:`stored_weights`): every Conv / MatMul / Gemm / ConvInteger /
  MatMulInteger node, in graph order (ONNX requires topological order). The weight is input 1:
  a float initializer, or the output of a DequantizeLinear whose input is an int8 initializer
  (scale, zero point, ``axis`` attribute; the spec's default axis is 1), or, for ORT's dynamic
  ConvInteger / MatMulInteger, an int8 initializer whose scale ORT stores as ``<name>_scale``
  (its own naming; the scale only feeds a Mul with the activation scale, so no node attribute
  ties them).
* **Layer errors** (:func:`layer_errors`, QDQ graphs): tensors are paired by name (tf2onnx names
  survive ORT's quantizer; artifacts store short names and are read back with their originals,
  see ``bench.modes._onnx_names``); a QDQ tensor is read after its DequantizeLinear, i.e. with
  activation quantization applied. Exposing intermediates as graph outputs stops ORT from fusing
  those QDQ groups into integer kernels, so these numbers are those of ORT's float simulation of
  the QDQ graph (same scales, same rounding at every Q/DQ), not of its int8 kernels.
* **Int8 formats per testbed** (:func:`int8_format`): which integer types ORT's int8 files take
  on a CPU class. MLAS adds u8 x s8 products in pairs into saturating 16-bit sums (VPMADDUBSW)
  where the CPU has no VNNI/AMX dot product (``Testbed.int8_saturates``); ORT's quantization docs
  recommend ``reduce_range`` or U8U8 there. Measured (issue 19; smoke tier, 2,000 test images;
  ``native``: AMD EPYC Zen 4, avx512-vnni; ``AVX2``: the same host under
  ``qemu-x86_64 -cpu Haswell-v4``, testbed x86-64-v3):

  | file (runtime)      | cnn native    | cnn AVX2      | mobilenet* native | mobilenet* AVX2 | vgg16 native  | vgg16** AVX2 (native)         |
  |---------------------|---------------|---------------|-------------------|-----------------|---------------|-------------------------------|
  | float32 (ORT)       | 84.85         | 84.85         | 81.0              | (native float)  | 75.40         | (native float)                |
  | S8S8 PTQ            | 85.05 / 99.30 | 82.40 / 93.30 | 81.0 / 98.8       | 83.6 / 92.6     | 75.55 / 98.95 | 75.39 / 97.66 (75.00 / 99.22) |
  | U8S8 PTQ            | 85.05 / 99.30 | 82.40 / 93.30 | 81.05 / 98.70 ***| -               | 75.55 / 98.95 | -                             |
  | S8S8+reduce_range   | 85.15 / 98.60 | 85.15 / 98.60 | 81.6 / 96.6       | 81.6 / 96.6     | 75.50 / 98.75 | 75.78 / 98.44 (75.78 / 98.44) |
  | U8U8 PTQ            | 85.20 / 99.05 | 85.20 / 99.05 | 82.0 / 98.8       | 82.0 / 98.8     | 75.40 / 99.20 | 75.39 / 98.05 (75.39 / 98.05) |
  | QAT U8S8 (ORT)      | 84.60 / 95.15 | 82.25 / 90.05 | 81.6 / 90.6       | 81.8 / 86.6     | -             | -                             |
  | QAT U8U8 (ORT)      | 84.60 / 95.15 | 84.60 / 95.15 | 81.6 / 90.6       | 81.6 / 90.6     | -             | -                             |
  | NNCF PTQ (OpenVINO) | 85.05 / 98.45 | 84.60 / 98.30 | 81.2 / 98.2       | 81.2 / 98.2     | 75.25 / 99.05 | 75.00 / 99.22 (74.22 / 99.22) |
  | QAT U8S8 (OpenVINO) | 84.70 / 95.15 | 84.65 / 95.10 | 81.2 / 90.2       | 81.2 / 86.4     | -             | -                             |
  | QAT U8U8 (OpenVINO) | 84.80 / 95.15 | 84.70 / 95.15 | 81.2 / 90.2       | 81.2 / 90.2     | -             | -                             |

  Accuracy % / top-1 agreement % with float32 on the same CPU (2,000 images; ``*``: the first
  500, ``**``: the first 256, the emulator being ~17x slower; there float32 is the native run's;
  ``***``: all 2,000; in brackets the native run on the same images; vgg16's QAT model was not trained yet when measured). Every format is
  exact on VNNI; under AVX2 kernels S8S8 and U8S8 (identical predictions) and the QAT U8S8 file
  move 6-10 % of the predictions (cnn: 2.45 and 2.60 pp lost) while U8U8 gives the native run's
  predictions to the image and reduce_range nearly so, with lower agreement (7-bit weights).
  U8U8 also agrees best with float32 natively, so PTQ takes U8U8 there (the guide's full cnn on a
  Zen 3: U8U8 92.22 %, reduce_range 92.08 %, float 92.11 %). NNCF's file (its first layer on
  7 bits) holds on AVX2. Measured with ``/tmp``-written files of ORT's ``quantize_static``
  (MinMax, the tier's 200 calibration images) evaluated at batch 256 by
  ``python evaluate.py`` and ``qemu-x86_64 -cpu Haswell-v4 python evaluate.py``.

  A testbed with exact int32 sums keeps the formats it always had (S8S8 PTQ, U8S8 QAT), so its
  files stay byte-identical; a saturating one takes PTQ_SATURATING and, for QAT, U8U8: the weights
  keep the trained grid (codes + 128, zero point 128), where ``reduce_range`` would halve it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from bench import formats
from bench.backends import BACKENDS, EVAL_BATCH, Backend, predict_batched
from bench.errors import ArtifactError, first_line
from bench.inspect_artifacts import StoredWeight, output_axis
from bench.layer_error import LayerErrors, error_row
from bench.testbeds import Testbed

# Weight layout of each weight-carrying op, as the transpose from a Keras kernel with output
# channels last: Conv OIHW (depthwise [C*M, 1, H, W]), MatMul (in, out). Gemm's depends on its
# transB (_layout).
WEIGHT_OPS = {"Conv": (3, 2, 0, 1), "ConvInteger": (3, 2, 0, 1), "MatMul": (0, 1),
              "MatMulInteger": (0, 1), "Gemm": (0, 1)}
# Dtypes of stored 8-bit weight codes: int8, or uint8 in the U8U8 format (see int8_format).
_INT8_CODES = (np.int8, np.uint8)
# Ops that only reshape: a BatchNormalization behind them still normalizes the op's output.
_SHAPE_OPS = {"Reshape", "Identity", "Squeeze", "Unsqueeze", "Transpose", "Flatten"}


@dataclasses.dataclass(frozen=True)
class Int8Format:
    """The integer types of an ORT int8 file, named as ORT's docs do (activations, then weights).

    Attributes:
        name: ``S8S8``, ``U8S8``, ``U8U8``, ``S8S8+reduce_range``: recorded per case as
            ``int8_format`` and part of the case's recipe hash.
        activation_type: ``"int8"`` or ``"uint8"``.
        weight_type: ``"int8"`` or ``"uint8"``.
        reduce_range: Weights on 7 bits, so that two u8 x s8 products fit a 16-bit sum.
    """

    name: str
    activation_type: str
    weight_type: str
    reduce_range: bool = False

    def quant_types(self):
        """``(activation, weight)`` as ``onnxruntime.quantization.QuantType`` members."""
        from onnxruntime.quantization import QuantType

        types = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
        return types[self.activation_type], types[self.weight_type]


INT8_FORMATS = {f.name: f for f in (
    Int8Format("S8S8", "int8", "int8"),
    Int8Format("S8S8+reduce_range", "int8", "int8", reduce_range=True),
    Int8Format("U8S8", "uint8", "int8"),
    Int8Format("U8U8", "uint8", "uint8"),
)}
# The format of ORT's file per mode, by whether the testbed's int8 sums saturate (see the module
# docstring's table). Exact sums: S8S8 for PTQ (signed activations avoid the U8S8 saturation of
# AVX-512 VNNI kernels), U8S8 for QAT (tf2onnx writes uint8 activations, the weights are stored
# int8). Saturating sums: PTQ_SATURATING, chosen from the table; QAT U8U8.
PTQ_SATURATING = "U8U8"
INT8_RECIPES: dict[str, dict[bool, str]] = {
    "ptq_int8": {False: "S8S8", True: PTQ_SATURATING},
    "qat_int8": {False: "U8S8", True: "U8U8"},
}


# Top-1 agreement floor of ORT's file with the other backends' files of the same mode, where its
# format quantizes weights on another grid than theirs. U8U8 PTQ stores weights symmetric over the
# full uint8 range (scale 2 absmax / 255, zero point 128) where LiteRT and NNCF use int8's narrow
# range (absmax / 127): a different int8 model, not the same one on another runtime. Measured on
# the smoke tier, U8U8 against LiteRT's ptq_int8: cnn 99.35 %, mobilenet 98.25 %, vgg16 99.10 %
# (and the U8U8 files give these predictions to the image under an emulated AVX2 CPU). 0.97 sits
# below the lowest by about the spread, as NNCF's 0.96 does; a broken file agrees 10-50 %. QAT's
# U8U8 file keeps the trained grid (codes + 128): 99.90-100 % against LiteRT, the mode's floor.
AGREEMENT_FLOORS: dict[tuple[str, str], float] = {("ptq_int8", "U8U8"): 0.97}


def agreement_floor(testbed: Testbed, mode: str) -> float | None:
    """The agreement floor ORT's ``mode`` file has on ``testbed`` (None: the mode's own)."""
    fmt = int8_format(testbed, mode)
    return AGREEMENT_FLOORS.get((mode, fmt.name)) if fmt else None


def int8_format(testbed: Testbed, mode: str) -> Int8Format | None:
    """The format ORT's ``mode`` file takes on ``testbed`` (None: the mode has no int8 recipe)."""
    names = INT8_RECIPES.get(mode)
    return INT8_FORMATS[names[testbed.int8_saturates]] if names else None


def other_recipe_testbed(testbed: Testbed) -> Testbed | None:
    """The testbed whose int8 sums differ from ``testbed``'s, nearest first (``Testbed.nearest``,
    then the table's order), on the same machine kind (None: there is none, as on arm64): its
    recipe makes the "other" file that the portability table runs."""
    from bench import testbeds

    candidates = [testbeds.get(name) for name in testbed.nearest] + list(testbeds.TESTBEDS)
    return next((t for t in candidates if t.int8_saturates != testbed.int8_saturates
                and set(t.machine) == set(testbed.machine)), None)


class OrtRunner:
    def __init__(self, path: Path, threads: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ArtifactError(
                f"{path} is not a loadable ONNX model ({first_line(exc)}); "
                "delete it so it is rebuilt"
            ) from exc
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def run_batch(self, images: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: images.astype(np.float32)})[0]

    def predict(self, images: np.ndarray, batch: int = EVAL_BATCH) -> np.ndarray:
        return predict_batched(self.run_batch, images, batch)


def load(path: Path, threads: int | None = None) -> OrtRunner:
    return OrtRunner(Path(path), threads)


def raw_loop(runner: OrtRunner, batches: list[np.ndarray]):
    """``InferenceSession.run`` over pre-made float32 ``batches``."""
    session, feed, outputs = runner.session, runner.input_name, [runner.output_name]

    def loop() -> None:
        for batch in batches:
            session.run(outputs, {feed: batch})

    return loop


# --------------------------------------------------------------------------------------------
# Stored weights
# --------------------------------------------------------------------------------------------


def _layout(node) -> tuple[int, ...]:
    """A node's weight layout (see WEIGHT_OPS): Gemm with transB=1 stores (out, in)."""
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return (1, 0) if trans_b else (0, 1)
    return WEIGHT_OPS[node.op_type]


def _per_axis(scales: np.ndarray, zero_points: np.ndarray, axis: int, shape: tuple[int, ...]):
    """Per-tensor (0-d scale, axis None) or per-channel (1-D scale, axis in [0, ndim)).

    ONNX makes a 0-d scale per-tensor whatever the (default) axis says. A 1-D scale with one
    entry is per-tensor too, unless the axis it would apply to has length 1.
    """
    axis = int(axis) % len(shape)
    if scales.ndim == 0 or (scales.size == 1 and shape[axis] != 1):
        return scales.reshape(()), zero_points.reshape(()), None
    return scales.reshape(-1), zero_points.reshape(-1), axis


def _dequantized(producer, initializers: dict) -> tuple | str:
    """(codes, scales, zero points, axis) of a DequantizeLinear, or why they are unreadable."""
    codes = initializers.get(producer.input[0])
    if codes is None or codes.dtype not in _INT8_CODES:
        return f"DequantizeLinear {producer.name} does not read an int8 or uint8 initializer"
    scales = initializers[producer.input[1]].astype(np.float32)
    zero_points = (initializers[producer.input[2]] if len(producer.input) > 2 and producer.input[2]
                   else np.zeros(scales.shape, np.int8)).astype(np.int64)
    axis = next((a.i for a in producer.attribute if a.name == "axis"), 1)  # ONNX default: 1
    return (codes, *_per_axis(scales, zero_points, axis, codes.shape))


def _integer_op(node, initializers: dict, channel_axis: int) -> tuple | str:
    """(codes, scales, zero points, axis) of a ConvInteger / MatMulInteger weight, or why not.

    ORT's dynamic quantizer names the weight ``<w>_quantized`` and its scale ``<w>_scale``, and
    quantizes per channel along the op's output channels (Conv: 0, MatMul: 1), which the file
    does not record: the scale only feeds a Mul with the activation's scale.
    """
    codes = initializers.get(node.input[1])
    base = node.input[1].removesuffix("_quantized")
    scales = initializers.get(f"{base}_scale")
    if codes is None or codes.dtype != np.int8 or scales is None:
        return f"{node.op_type} {node.name}: no int8 initializer with a {base}_scale initializer"
    zero_points = (initializers[node.input[3]] if len(node.input) > 3 and node.input[3]
                   else np.zeros(scales.shape, np.int8)).astype(np.int64)
    return (codes, *_per_axis(scales.astype(np.float32), zero_points, channel_axis, codes.shape))


def _feeds_batchnorm(node, consumers: dict) -> bool:
    """Whether ``node``'s output reaches a BatchNormalization through shape-only ops.

    tf2onnx fuses Conv + BatchNorm into ``*_weights_fused_bn`` weights, but not when a Reshape
    sits between them (MobileNet's last blocks, whose feature maps are 1x1 on 32x32 input).
    """
    for _ in range(len(_SHAPE_OPS) + 1):  # a bounded walk: each shape op at most once in a row
        following = consumers.get(node.output[0], [])
        if len(following) != 1:
            return False
        node = following[0]
        if node.op_type == "BatchNormalization":
            return True
        if node.op_type not in _SHAPE_OPS:
            return False
    return False


def stored_weights(path: Path) -> list[StoredWeight]:
    """The weight (input 1) of every Conv / MatMul / Gemm (and integer variant), in graph order.

    Ops whose input 1 is an activation (neither an initializer nor dequantized from one) carry no
    weight and are left out. A quantized weight whose parameters cannot be read is listed with
    ``unreadable`` set, so that ``inspect_artifacts.match`` reports it instead of dropping it.
    """
    from onnx import numpy_helper

    from bench.modes._onnx_names import load_named

    graph = load_named(path).graph
    initializers = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found = []
    for node in graph.node:
        if node.op_type not in WEIGHT_OPS or len(node.input) < 2:
            continue
        from_keras = _layout(node)
        channel_axis = output_axis(from_keras)
        weight, producer = node.input[1], producers.get(node.input[1])
        if weight in initializers and initializers[weight].dtype not in _INT8_CODES:
            found.append(StoredWeight(weight, node.op_type, initializers[weight], None, None, None, channel_axis,
                                      from_keras=from_keras))
            continue
        if node.op_type.endswith("Integer"):
            quantized = _integer_op(node, initializers, channel_axis)
        elif producer is not None and producer.op_type == "DequantizeLinear":
            quantized = _dequantized(producer, initializers)
        else:
            continue  # input 1 is an activation: no weight
        if isinstance(quantized, str):
            found.append(StoredWeight(weight, node.op_type, np.zeros(0, np.int8), None, None, None,
                                      channel_axis, unreadable=quantized, from_keras=from_keras))
            continue
        codes, scales, zero_points, axis = quantized
        name = producer.input[0] if producer is not None else weight
        found.append(StoredWeight(name, node.op_type, codes, scales, zero_points, axis, channel_axis,
                                  batchnorm_after=_feeds_batchnorm(node, consumers), from_keras=from_keras))
    return found


# --------------------------------------------------------------------------------------------
# Layer errors
# --------------------------------------------------------------------------------------------


def _run_with_outputs(path: Path, names: list[str], images: np.ndarray) -> dict[str, np.ndarray]:
    """Runs an ONNX model with ``names`` added as graph outputs; returns them by name."""
    import onnx
    import onnxruntime as ort

    from bench.modes._onnx_names import load_named

    model = load_named(path)
    model.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    values = session.run(names, {session.get_inputs()[0].name: images.astype(np.float32)})
    return dict(zip(names, values, strict=True))


def layer_errors(float_path: Path, quantized_path: Path, images: np.ndarray) -> LayerErrors:
    """Per-layer errors of an ORT QDQ model: each float node output against its dequantized twin.

    A quantized graph that shares no tensor name with the float graph is reported ``unpaired``
    (tf2onnx names a QAT graph's tensors after tfmot's wrappers, ``quant_conv1`` for ``conv1``).
    """
    from bench.modes._onnx_names import load_named

    float_nodes = [n for n in load_named(float_path).graph.node if n.output]
    quant_tensors = {out for n in load_named(quantized_path).graph.node for out in n.output}
    pairs, unmatched = [], []
    for node in float_nodes:
        name = node.output[0]
        twin = f"{name}_DequantizeLinear_Output"
        if twin in quant_tensors or name in quant_tensors:
            pairs.append((node.op_type, name, twin if twin in quant_tensors else name))
        else:
            unmatched.append(f"{name}: no tensor of that name in the quantized graph")
    if not pairs:
        return LayerErrors([], unmatched, unpaired="the quantized graph shares no tensor name with the float "
                           "graph (as when tf2onnx names a QAT graph's tensors after tfmot's wrappers), so "
                           "nothing pairs by name")
    float_values = _run_with_outputs(float_path, [p[1] for p in pairs], images)
    quant_values = _run_with_outputs(quantized_path, [p[2] for p in pairs], images)
    rows = []
    for op, name, twin in pairs:
        if float_values[name].shape != quant_values[twin].shape:
            unmatched.append(f"{name}: shape {float_values[name].shape} vs {quant_values[twin].shape}")
            continue
        rows.append(error_row(name, op, float_values[name], quant_values[twin]))
    return LayerErrors(rows, unmatched)


FORMAT = formats.define("onnx", ".onnx", "an ONNX model (opset 17; int8 as QDQ)", home="onnxruntime")

SPEC = BACKENDS.register("onnxruntime", Backend(
    name="onnxruntime",
    description="ONNX Runtime, CPU execution provider (MLAS)",
    load=load,
    formats=("onnx",),
    packages=("onnxruntime",),
    raw_loop=raw_loop,
    stored_weights=stored_weights,
    layer_errors=layer_errors,
    rounding="ort",
    agreement_floor=agreement_floor,
))
