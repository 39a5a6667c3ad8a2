"""Export a trained DSResNet to ONNX: one self-contained ``.onnx`` file for ONNX Runtime (Python,
C++, or onnxruntime-web in a browser), with its input contract written next to it.

Hand-written, beside the ``torch.export``/TorchScript export of the Using chapter
(:mod:`dsnet.export`), whose deployable wrapper it exports: the input normalization and the two
sigmoids are inside, so the file maps ``(bg, bg_fg)`` RGB in [0, 1] to ``(depth, mask_prob)`` in
[0, 1]. Batch, height and width are free (height and width multiples of 32, at least 64). The
weights are stored as float16 (the shipped weights are float16 already, so nothing is lost) and
cast to float32 inside the graph, so every runtime computes in float32: about 21 MB.

Needs the ``onnx`` extra (``pip install 'dsnet[onnx]'``: onnx and onnxscript, which
``torch.onnx.export`` uses). The export is checked before it is put in place: with ONNX Runtime
when it is installed, else with onnx's reference evaluator.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from dsnet._version import __version__
from dsnet.export import Deployable, check_destination, check_writable, contract_parts, contract_path
from dsnet.files import atomic_write_text
from dsnet.inference import MAX_SIDE, ModelSource, load_predictor
from dsnet.shapes import DIVISOR, MIN_SIZE

if TYPE_CHECKING:
    import onnx

TOLERANCE = 1e-4
"""The largest absolute difference from the PyTorch model that an export may show (float32 compute)."""

OPSET = 20
INPUT_NAMES = ("bg", "bg_fg")
OUTPUT_NAMES = ("depth", "mask_prob")
CHECK_SHAPES = ((1, 3, 64, 96), (2, 3, 128, 128))
"""The input shapes ``(N, 3, H, W)`` that an export is checked at, two sizes and two batch sizes,
none of them the size it was traced at (``TRACE_SHAPE``)."""
TRACE_SHAPE = (2, 3, 96, 64)
MAX_BLOCKS = 8192 // DIVISOR   # the traced graph's largest side, in blocks of 32 pixels (8192 px)
HALF_MIN_ELEMENTS = 16         # smaller float32 initializers (scales, biases of one) stay float32


def check_onnx_tools() -> None:
    """ImportError, in one sentence, when ``onnx`` or ``onnxscript`` (``torch.onnx.export``'s
    exporter) is missing, or torch is too old for the exporter this module uses."""
    missing = [name for name in ("onnx", "onnxscript") if not _importable(name)]
    if missing:
        raise ImportError(f"ONNX export needs {' and '.join(missing)}: pip install 'dsnet[onnx]'")
    if tuple(int(p) for p in torch.__version__.split(".")[:2]) < (2, 6):
        raise ImportError(f"ONNX export needs torch 2.6 or later (torch.onnx.export with dynamic_shapes), "
                          f"not {torch.__version__}")


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def rounded_to_half(model: nn.Module) -> nn.Module:
    """A float32, eval-mode copy of ``model`` whose floating parameters and buffers are rounded to
    float16 values (what the ONNX file stores); float16 weights come through unchanged."""
    copied = copy.deepcopy(model).cpu().eval()
    with torch.no_grad():
        for tensor in [*copied.parameters(), *copied.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(torch.float16).to(tensor.dtype))
    return copied.float()


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's notes (missing torchvision ops, renamed axes, deprecations) while it runs."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def to_onnx(module: nn.Module) -> "onnx.ModelProto":
    """``module`` (a :class:`dsnet.export.Deployable`: ``(bg, bg_fg)`` ``(N, 3, H, W)`` ->
    ``(depth, mask_prob)`` ``(N, 1, H, W)``) as an ONNX graph with free batch, height and width
    (multiples of 32, from 64), traced by ``torch.onnx.export`` (the torch.export-based exporter)."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    height = DIVISOR * torch.export.Dim("height_blocks", min=MIN_SIZE // DIVISOR, max=MAX_BLOCKS)
    width = DIVISOR * torch.export.Dim("width_blocks", min=MIN_SIZE // DIVISOR, max=MAX_BLOCKS)
    shapes = {name: {0: batch, 2: height, 3: width} for name in INPUT_NAMES}
    generator = torch.Generator().manual_seed(0)
    example = tuple(torch.rand(*TRACE_SHAPE, generator=generator) for _ in INPUT_NAMES)
    with _quiet_exporter():
        program = torch.onnx.export(module, example, dynamo=True, dynamic_shapes=shapes, opset_version=OPSET,
                                    input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                                    external_data=False, verbose=False)
    proto = program.model_proto
    _rename_axes(proto, {"batch": "batch", "height_blocks": "height", "width_blocks": "width"})
    return proto


def _rename_axes(proto: "onnx.ModelProto", names: dict[str, str]) -> None:
    """Name the symbolic axes of the graph's inputs and outputs ``batch``, ``height`` and ``width``
    (the exporter writes a derived size as ``32*height_blocks``)."""
    for value in [*proto.graph.input, *proto.graph.output]:
        for dim in value.type.tensor_type.shape.dim:
            for symbol, name in names.items():
                if dim.dim_param and symbol in dim.dim_param:
                    dim.dim_param = name


def store_half(proto: "onnx.ModelProto", min_elements: int = HALF_MIN_ELEMENTS) -> int:
    """Store every float32 initializer of ``proto`` with at least ``min_elements`` values that
    float16 holds exactly as float16, followed by a ``Cast`` back to float32 under its old name:
    half the bytes, the same float32 arithmetic. Values that float16 cannot hold exactly stay
    float32. Changes ``proto`` in place; returns how many initializers it converted."""
    from onnx import TensorProto, helper, numpy_helper

    kept, casts = [], []
    for initializer in proto.graph.initializer:
        values = numpy_helper.to_array(initializer)
        half = values.astype(np.float16) if values.dtype == np.float32 else None
        if half is None or values.size < min_elements or not np.array_equal(half.astype(np.float32), values):
            kept.append(initializer)
            continue
        kept.append(numpy_helper.from_array(half, f"{initializer.name}.float16"))
        casts.append(helper.make_node("Cast", [f"{initializer.name}.float16"], [initializer.name],
                                      name=f"{initializer.name}.to_float32", to=TensorProto.FLOAT))
    nodes = casts + list(proto.graph.node)        # the casts first: the nodes stay in topological order
    del proto.graph.initializer[:], proto.graph.node[:]
    proto.graph.initializer.extend(kept)
    proto.graph.node.extend(nodes)
    return len(casts)


def onnx_runner(path: str | os.PathLike) -> tuple[Callable[[np.ndarray, np.ndarray], list[np.ndarray]], str]:
    """``(run, name)``: ``run(bg, bg_fg)`` evaluates the ONNX file at ``path`` on float32
    ``(N, 3, H, W)`` arrays and returns ``[depth, mask_prob]``, each ``(N, 1, H, W)``; ``name``
    says what runs it: ONNX Runtime (CPU, one thread) when installed, else onnx's reference evaluator."""
    try:
        import onnxruntime
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        evaluator = ReferenceEvaluator(str(path))
        return (lambda bg, bg_fg: evaluator.run(None, {"bg": bg, "bg_fg": bg_fg})), "onnx reference evaluator"
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return (lambda bg, bg_fg: session.run(None, {"bg": bg, "bg_fg": bg_fg})), f"onnxruntime {onnxruntime.__version__}"


def _numpy_runner(module: nn.Module) -> Callable[[np.ndarray, np.ndarray], list[np.ndarray]]:
    """``module`` called the way :func:`onnx_runner`'s ``run`` is: numpy arrays in and out."""
    def run(bg: np.ndarray, bg_fg: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            return [out.numpy() for out in module(torch.from_numpy(bg), torch.from_numpy(bg_fg))]

    return run


def max_onnx_difference(run: Callable[[np.ndarray, np.ndarray], list[np.ndarray]],
                        module: Callable[[Tensor, Tensor], tuple[Tensor, ...]],
                        shapes: tuple[tuple[int, int, int, int], ...] = CHECK_SHAPES, seed: int = 1) -> float:
    """The largest absolute difference between ``run`` (see :func:`onnx_runner`) and ``module``
    (a :class:`dsnet.export.Deployable` or any callable ``(bg, bg_fg)`` -> ``(depth, mask_prob)``)
    on random inputs of each ``(N, 3, H, W)`` in ``shapes``; infinite when the shapes differ."""
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for shape in shapes:
        bg, bg_fg = (torch.rand(*shape, generator=generator) for _ in INPUT_NAMES)
        with torch.inference_mode():
            want = module(bg, bg_fg)
        got = run(bg.numpy(), bg_fg.numpy())
        if len(got) != len(want) or any(g.shape != tuple(w.shape) for g, w in zip(got, want)):
            return float("inf")
        worst = max(worst, *(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want)))
    return worst if np.isfinite(worst) else float("inf")


def export_onnx(model: ModelSource = None, path: str | os.PathLike = "dsresnet.onnx", *,
                overwrite: bool = False) -> dict[str, Any]:
    """Write ``model`` (as :func:`dsnet.inference.load_predictor` takes it; None: the shipped
    weights) to ``path`` as one ONNX file (``(bg, bg_fg)`` RGB ``(N, 3, H, W)`` in [0, 1] ->
    ``(depth, mask_prob)`` ``(N, 1, H, W)`` in [0, 1]) and its input contract to ``path + '.json'``.
    The destination is checked first (as :func:`dsnet.export.export_model` checks it), then the
    tools (:func:`check_onnx_tools`); both files appear only after the ONNX file, run by ONNX
    Runtime (or onnx's reference evaluator), matched PyTorch within :data:`TOLERANCE` at
    :data:`CHECK_SHAPES`. Returns the contract."""
    path = Path(path)
    check_destination(path, model, overwrite)
    check_onnx_tools()
    predictor = load_predictor(model, "cpu")
    check_writable(path)
    import onnx

    original = Deployable(copy.deepcopy(predictor.model).float().cpu().eval(), predictor.input_stats).eval()
    stored = Deployable(rounded_to_half(predictor.model), predictor.input_stats).eval()
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        proto = to_onnx(stored)
        store_half(proto)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(staged))
        run, checker = onnx_runner(staged)
        difference = max_onnx_difference(run, stored)
        if not difference <= TOLERANCE:
            raise RuntimeError(f"the ONNX model differs from the PyTorch one by {difference:.3g} "
                               f"(at most {TOLERANCE:g} allowed)")
        rounding = max_onnx_difference(_numpy_runner(stored), original, shapes=CHECK_SHAPES[:1])
        contract = onnx_contract(path, predictor, difference, rounding, checker)
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)
    atomic_write_text(contract_path(path), json.dumps(contract, indent=1) + "\n")
    return contract


def onnx_contract(path: Path, predictor: Any, difference: float, rounding: float, checker: str) -> dict[str, Any]:
    """The input contract of the ONNX file ``path``: what goes in, what comes out, how it was checked."""
    import onnx

    parts = contract_parts("(N, 3, H, W)", "the model", predictor.input_stats)
    train = predictor.train_size
    return {
        "artifact": path.name,
        "format": "onnx",
        "load": "onnxruntime.InferenceSession(path); in a browser, onnxruntime-web's InferenceSession.create(url)",
        "opset": OPSET,
        "input_names": list(INPUT_NAMES),
        "output_names": list(OUTPUT_NAMES),
        "inputs": {**parts["images"],
                   "sizes": f"H and W divisible by {DIVISOR} and at least {MIN_SIZE}; bg and bg_fg of one shape",
                   "batch": "any N >= 1", "alignment": parts["alignment"]},
        "value_range": {"inputs": [0.0, 1.0], "outputs": [0.0, 1.0]},
        "normalization": parts["normalization"],
        "outputs": parts["outputs"],
        "sizes_dsnet_predict_uses": {
            "mask": f"the input's own size rounded to multiples of {DIVISOR}, at most {MAX_SIDE} a side"
                    + (" (the training scale when the input is smaller than that)" if train else ""),
            "depth": f"the input scaled to the area of a {train} x {train} square, sides rounded to multiples "
                     f"of {DIVISOR}" if train else "the mask's size",
        },
        "train_size": train,
        "weights": "float16 in the file, cast to float32 inside the graph: float32 arithmetic",
        "max_abs_difference_float16_weights_vs_source": rounding,
        "checked_shapes": [list(s) for s in CHECK_SHAPES],
        "checked_with": checker,
        "max_abs_difference_vs_pytorch": difference,
        "tolerance": TOLERANCE,
        "source": predictor.source,
        "dsnet_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "onnx_version": onnx.__version__,
    }
