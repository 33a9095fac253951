"""Short tensor names in deployed ONNX files, the readable ones kept beside them.

tf2onnx and ONNX Runtime's quantizer name every tensor after its TensorFlow op
(``cnn/conv2/Conv2D_weights_fused_bn_DequantizeLinear_Output``), and a QDQ graph repeats each
name in up to four nodes. In the 24k-parameter cnn those strings were 10 KB of a 37 KB int8 file
(measured), which capped its ONNX size ratio at 2.59x against 3.17x for the same weights in
LiteRT. Deployment tools strip such debug names; the harness does the same to every ONNX
artifact (float32 too, so ratios compare like with like) and writes the original names to
``<stem>.names.json`` beside the model, from which :func:`load_named` restores them for the
tools that pair tensors by name (per-layer error, weight inspection, ORT's own quantizer).

Graph input and output names are kept: they are the model's interface.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench import atomic
from bench.errors import ArtifactError, first_line

NAMES_SCHEMA = 1
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def names_path(model_path: Path) -> Path:
    """The sidecar holding the original names of ``model_path``."""
    model_path = Path(model_path)
    return model_path.with_name(f"{model_path.stem}.names.json")


def _short(index: int) -> str:
    """``index`` in base 36, prefixed so that no short name can be empty or look like a number."""
    digits = ""
    while True:
        index, rest = divmod(index, len(_DIGITS))
        digits = _DIGITS[rest] + digits
        if index == 0:
            return f"t{digits}"


def _has_subgraphs(graph) -> bool:
    """Whether any node carries a graph attribute (If, Loop, Scan): names there cross scopes."""
    from onnx import AttributeProto

    return any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for n in graph.node for a in n.attribute)


def compact(model) -> dict | None:
    """Renames ``model``'s tensors to short names in place; drops node names and value_info.

    Args:
        model: An ``onnx.ModelProto``.

    Returns:
        What :func:`restore` needs (``tensors``: short -> original, ``nodes``: node names in
        order), or None when the graph has subgraphs and is left untouched.
    """
    graph = model.graph
    if _has_subgraphs(graph):
        return None
    interface = {v.name for v in graph.input} | {v.name for v in graph.output}
    originals: dict[str, str] = {}
    shorts: dict[str, str] = {}

    def rename(name: str) -> str:
        if not name or name in interface:
            return name
        if name not in shorts:
            candidate = _short(len(shorts))
            while candidate in interface:
                candidate += "_"
            shorts[name], originals[candidate] = candidate, name
        return shorts[name]

    # Nodes in an order of the graph's structure, and names handed out in the order those nodes
    # use the tensors: tf2onnx and ORT's quantizer order nodes and initializers by names that
    # carry process-wide counters, so the same weights converted after another model came out
    # in another order, with other short names and other bytes (measured: the smoke mobilenet's
    # float32 file 26 bytes apart; the cnn's int8 file the same size, other bytes).
    _canonical_node_order(graph)
    node_names = []
    for node in graph.node:
        node_names.append(node.name)
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
        # ClearField, not "": onnx protos are proto2, where a set empty string still costs bytes.
        node.ClearField("name")
        node.ClearField("doc_string")
    for init in graph.initializer:
        init.name = rename(init.name)
    _sort_initializers(graph, list(shorts.values()))
    _canonical_dim_params(graph)
    del graph.value_info[:]
    graph.ClearField("doc_string")
    return {"schema": NAMES_SCHEMA, "tensors": originals, "nodes": node_names}


def _canonical_node_order(graph) -> None:
    """Puts ``graph.node`` in an order that depends on the graph's structure only, not on names:
    depth first from each graph output in turn, each node's inputs in their order, a node placed
    after everything it reads (a topological order). Nodes no output depends on keep their
    relative order after the others."""
    nodes = list(graph.node)
    producer = {name: i for i, node in enumerate(nodes) for name in node.output if name}
    placed: set[int] = set()
    order: list[int] = []
    for root in (producer[v.name] for v in graph.output if v.name in producer):
        if root in placed:
            continue
        on_path = {root}
        stack = [(root, iter(nodes[root].input))]
        while stack:
            index, inputs = stack[-1]
            for name in inputs:
                child = producer.get(name)
                if child is not None and child not in placed and child not in on_path:
                    on_path.add(child)
                    stack.append((child, iter(nodes[child].input)))
                    break
            else:
                stack.pop()
                placed.add(index)
                order.append(index)
    order += [i for i in range(len(nodes)) if i not in placed]
    _replace(graph.node, [nodes[i] for i in order])


def _replace(field, items: list) -> None:
    """Replaces a repeated proto field's items with copies of ``items``, in that order."""
    copies = [type(item)() for item in items]
    for copy, item in zip(copies, items, strict=True):
        copy.CopyFrom(item)
    del field[:]
    field.extend(copies)


def _sort_initializers(graph, order: list[str]) -> None:
    """Puts ``graph.initializer`` in the order of ``order`` (names not listed keep their place
    after those listed)."""
    rank = {name: i for i, name in enumerate(order)}
    _replace(graph.initializer, sorted(graph.initializer, key=lambda init: rank.get(init.name, len(rank))))


def _canonical_dim_params(graph) -> None:
    """Renames the symbolic dimensions of the graph's inputs and outputs ``dim0``, ``dim1``, ...
    in order of appearance: tf2onnx numbers them with a process-wide counter (``unk__477``)."""
    names: dict[str, str] = {}
    for value in [*graph.input, *graph.output]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param"):
                dim.dim_param = names.setdefault(dim.dim_param, f"dim{len(names)}")


def restore(model, names: dict) -> None:
    """Puts the original tensor and node names back into a compacted ``model``, in place."""
    tensors = names["tensors"]
    graph = model.graph
    for init in graph.initializer:
        init.name = tensors.get(init.name, init.name)
    for node, original in zip(graph.node, names["nodes"], strict=True):
        node.input[:] = [tensors.get(n, n) for n in node.input]
        node.output[:] = [tensors.get(n, n) for n in node.output]
        if original:
            node.name = original


def compact_file(path: Path) -> None:
    """Compacts the ONNX file at ``path`` and writes its names sidecar (both atomically)."""
    import onnx

    model = onnx.load(str(path))
    names = compact(model)
    if names is None:
        return
    atomic.write_text(names_path(path), json.dumps(names, sort_keys=True))
    atomic.write_bytes(path, model.SerializeToString())


def load_named(path: Path):
    """The ONNX model at ``path`` with its original names (as written, if it has no sidecar)."""
    import onnx

    model = onnx.load(str(path))
    sidecar = names_path(path)
    if sidecar.is_file():
        try:
            names = json.loads(sidecar.read_text())
            if names.get("schema") != NAMES_SCHEMA or len(names["nodes"]) != len(model.graph.node):
                raise ValueError("it was written for another model or by another harness version")
            restore(model, names)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ArtifactError(
                f"{sidecar} does not fit {path} ({first_line(exc)}); delete both and rerun to rebuild them"
            ) from exc
    return model


def named_copy(path: Path, into: Path) -> Path:
    """Writes the named form of the model at ``path`` to ``into`` and returns ``into``."""
    atomic.write_bytes(into, load_named(path).SerializeToString())
    return into
