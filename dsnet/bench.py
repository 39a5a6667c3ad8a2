"""Training and inference speed of DSResNet: the plain way against the dsnet fast path.

The **plain way** is what a first PyTorch script does: float32, NCHW, eager, and batches decoded
from JPEG files on disk by a ``DataLoader`` (a small MODEST folder is written to a temporary
directory first). The **fast path** is the trainer's: batches rendered on the device by
:class:`dsnet.data.SyntheticMuseum`, channels-last, mixed precision on CUDA (bf16, else fp16 with
a grad scaler; float32 on CPU, see :func:`dsnet.device.amp_dtype`), a fused optimizer on CUDA and,
optionally, ``torch.compile``.

Every timed step includes getting its batch (the loader's wait, or the render), so the figures
are what a training loop achieves. Reported are medians over the timed steps after warm-up,
achieved TFLOP/s from the model's FLOPs as counted by ``torch.utils.flop_counter`` (a training
step counts three times the forward pass), and the data generator's own images/s at the same size
next to the fast trainer's.

Two more measurements share the timing helpers: the ``dsnet predict`` path against the network's
forward passes (:func:`bench_predict`, ``dsnet bench --predict``), and the renderer alone
(:func:`bench_renderer`, ``dsnet data bench``).
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from dsnet.scene import Realism

PATHS = ("plain", "fast")


def forward_flops(size: int) -> int:
    """FLOPs of one DSResNet forward pass on one ``size`` x ``size`` pair (counted on the meta
    device: nothing is computed)."""
    from torch.utils.flop_counter import FlopCounterMode

    from dsnet.model import DSResNet

    with torch.device("meta"):
        model = DSResNet()
        x = torch.empty(1, 3, size, size)
    with FlopCounterMode(display=False) as counter:
        model(x, x)
    return int(counter.get_total_flops())


def _cpu_name() -> str:
    """The CPU's model name and core count, e.g. ``cpu (AMD EPYC, 2 cores)``."""
    from dsnet.device import cpu_model

    return f"cpu ({cpu_model()}, {os.cpu_count()} cores)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(steps: Iterator[Callable[[], None]], warmup: int, device: torch.device) -> list[float]:
    """Seconds of each call after the first ``warmup`` ones (each ends synchronized)."""
    times = []
    for i, step in enumerate(steps):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def _rate(times: list[float], batch_size: int) -> float:
    return batch_size / statistics.median(times)


def _loader_steps(loader, count: int, device: torch.device, body: Callable[[dict], None]):
    """``count`` step closures, each taking the loader's next batch (the wait is timed) and
    running ``body`` on it."""
    batches = iter(loader)

    def step():
        batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
        body(batch)

    for _ in range(count):
        yield step


def _render_steps(data, count: int, batch_size: int, body: Callable[[dict], None], offset: int = 0):
    for i in range(count):
        start = offset + i * batch_size
        yield lambda start=start: body(data.batch(range(start, start + batch_size)))


def _train_body(run) -> Callable[[dict], None]:
    from dsnet.train import train_step

    return lambda batch: train_step(run, batch)


def _infer_body(run) -> Callable[[dict], None]:
    from dsnet.train import predict_batch

    def body(batch: dict[str, Tensor]) -> None:
        with torch.inference_mode():
            predict_batch(run.net, batch, run.config, run.dtype)

    return body


def _build(fast: bool, compile: bool, device: torch.device):
    """The trainer's own run (dsnet.train.build_run): the plain way with every speed-up off."""
    from dsnet.train import build_run, make_config

    config = make_config("quick", amp=fast, channels_last=fast, fused=fast, compile=fast and compile,
                         device=str(device))
    return build_run(config, device=device)


def bench_plain(size: int, root: str, steps: int, warmup: int, batch_size: int, device: torch.device,
                workers: int) -> dict[str, float]:
    """Images/s of the plain way at ``size``, reading the MODEST folder ``root``."""
    from dsnet.modest import ModestMuseum

    run = _build(False, False, device)
    data = ModestMuseum(root, split="all", check="none")
    count = warmup + steps

    def loader():
        return torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True,
                                           num_workers=workers, pin_memory=device.type == "cuda")

    run.net.train()
    train = _timed(_loader_steps(loader(), count, device, _train_body(run)), warmup, device)
    run.net.eval()
    infer = _timed(_loader_steps(loader(), count, device, _infer_body(run)), warmup, device)
    return {"train_ips": _rate(train, batch_size), "infer_ips": _rate(infer, batch_size)}


def bench_fast(size: int, steps: int, warmup: int, batch_size: int, device: torch.device,
               compile: bool) -> dict[str, float]:
    """Images/s of the dsnet fast path at ``size``, and of its data generator alone."""
    from dsnet.data import SyntheticMuseum
    from dsnet.device import precision_name

    run = _build(True, compile, device)
    count = warmup + steps
    data = SyntheticMuseum(size, length=3 * count * batch_size, seed=0, device=device)
    run.net.train()
    train = _timed(_render_steps(data, count, batch_size, _train_body(run)), warmup, device)
    run.net.eval()
    infer = _timed(_render_steps(data, count, batch_size, _infer_body(run), count * batch_size), warmup, device)
    render = _timed(_render_steps(data, count, batch_size, lambda batch: None, 2 * count * batch_size),
                    warmup, device)
    return {"train_ips": _rate(train, batch_size), "infer_ips": _rate(infer, batch_size),
            "generator_ips": _rate(render, batch_size),
            "amp_dtype": precision_name(run.dtype)}


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def run_bench(sizes: Sequence[int] = (96, 224), steps: int = 10, warmup: int = 2, batch_size: int = 16,
              device: str | torch.device = "auto", compile: bool = False, workers: int = 2,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Benchmark the plain way and the fast path at each of ``sizes``; returns a JSON-able dict
    (``rows``: one per size) that :func:`format_table` prints."""
    from dsnet.modest import write_modest
    from dsnet.shapes import size_problem

    problems = [p for p in (size_problem("size", s) for s in sizes) if p]
    if problems:
        raise ValueError(problems[0])
    if steps < 1 or warmup < 0 or batch_size < 1 or workers < 0:
        raise ValueError("need steps >= 1, warmup >= 0, batch_size >= 1 and workers >= 0")
    from dsnet.device import pick_device

    device = pick_device(device)
    log = log or (lambda message: None)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "device_type": device.type, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "batch_size": batch_size, "steps": steps, "warmup": warmup, "workers": workers, "compile": compile,
        "load_before": _load(), "rows": []}
    for size in sizes:
        flops = forward_flops(size)
        with tempfile.TemporaryDirectory(prefix="dsnet-bench-") as root:
            log(f"{size}px: writing {(warmup + steps) * batch_size} JPEG samples for the plain way")
            write_modest(root, (warmup + steps) * batch_size, size=size, seed=0, fg_per_bg=4, batch_size=32,
                         device=device, progress=False)
            log(f"{size}px: plain way")
            plain = bench_plain(size, root, steps, warmup, batch_size, device, workers)
        log(f"{size}px: fast path")
        fast = bench_fast(size, steps, warmup, batch_size, device, compile)
        row = {"size": size, "forward_gflops_per_image": flops / 1e9, "amp_dtype": fast.pop("amp_dtype"),
               "generator_ips": fast.pop("generator_ips")}
        for name, result in (("plain", plain), ("fast", fast)):
            result["train_tflops"] = 3 * flops * result["train_ips"] / 1e12
            result["infer_tflops"] = flops * result["infer_ips"] / 1e12
            row[name] = result
        row["speedup"] = {"train": fast["train_ips"] / plain["train_ips"],
                          "infer": fast["infer_ips"] / plain["infer_ips"]}
        row["generator_over_trainer"] = row["generator_ips"] / fast["train_ips"]
        report["rows"].append(row)
    report["load_after"] = _load()
    return report


def format_table(report: dict[str, Any]) -> str:
    """The report as a plain-text table, one block per image size."""
    head = (f"{report['device']}, torch {report['torch']}, {report['threads']} CPU threads, batch "
            f"{report['batch_size']}, median of {report['steps']} steps after {report['warmup']} warm-up, "
            f"{report['workers']} loader workers, compile {'on' if report['compile'] else 'off'}")
    lines = [head]
    if report.get("load_before"):
        lines.append(f"load average before {report['load_before']}, after {report.get('load_after')}")
    lines.append(f"{'size':>5}  {'path':<22}{'train img/s':>12}{'infer img/s':>12}{'train TFLOP/s':>15}"
                 f"{'infer TFLOP/s':>15}")
    for row in report["rows"]:
        labels = {"plain": "plain (fp32, JPEG)", "fast": f"fast ({row['amp_dtype']})"}
        for name in PATHS:
            r = row[name]
            lines.append(f"{row['size']:>5}  {labels[name]:<22}{r['train_ips']:>12.1f}{r['infer_ips']:>12.1f}"
                         f"{r['train_tflops']:>15.4f}{r['infer_tflops']:>15.4f}")
        s = row["speedup"]
        lines.append(f"{row['size']:>5}  {'fast / plain':<22}{s['train']:>11.2f}x{s['infer']:>11.2f}x")
        lines.append(f"{row['size']:>5}  {'generator':<22}{row['generator_ips']:>12.1f}   = "
                     f"{row['generator_over_trainer']:.1f}x the fast trainer (it keeps up at >= 3x)")
    return "\n".join(lines)


# ---------------------------------------------------------------- the predict path (dsnet bench --predict)
def _write_pairs(folder, size: int, count: int) -> list[tuple[Any, Any]]:
    """``count`` rendered test pairs at ``size`` x ``size`` as JPEG files in ``folder/bg`` and
    ``folder/bg_fg``, as a camera would give them; returns their (BG, BG-FG) paths."""
    from pathlib import Path

    from PIL import Image

    from dsnet.data import SyntheticMuseum

    folder, data = Path(folder), SyntheticMuseum(size, length=count, split="test")
    for key in ("bg", "bg_fg"):
        (folder / key).mkdir(parents=True, exist_ok=True)
    pairs = []
    for start in range(0, count, 32):
        scenes = data.batch(range(start, min(start + 32, count)))
        for i in range(len(scenes["bg"])):
            paths = tuple(folder / key / f"pair{start + i:04d}.jpg" for key in ("bg", "bg_fg"))
            for key, path in zip(("bg", "bg_fg"), paths):
                Image.fromarray((scenes[key][i].permute(1, 2, 0) * 255).round().byte().numpy()).save(path, quality=90)
            pairs.append(paths)
    return pairs


def _bench_predictor(device: torch.device):
    """The shipped weights as ``dsnet predict`` loads them, else an untrained DSResNet (same speed)."""
    from dsnet.inference import load_predictor
    from dsnet.io import CheckpointError
    from dsnet.model import DSResNet

    try:
        return load_predictor(None, device), "shipped weights"
    except CheckpointError:
        return load_predictor(DSResNet().to(device)), "an untrained DSResNet (no shipped weights)"


def _forward_steps(model, sizes, pairs: int, count: int, device: torch.device):
    """``count`` step closures, each running ``model`` on ``pairs`` single pairs at every one of
    ``sizes``, with the layout prediction uses (channels-last on the CPU)."""
    layout = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    inputs = {s: torch.rand(1, 3, *s, device=device).contiguous(memory_format=layout) for s in sizes}

    def step():
        with torch.inference_mode():
            for _ in range(pairs):
                for x in inputs.values():
                    model(x, x)

    for _ in range(count):
        yield step


def bench_predict(sizes: Sequence[int] = (224,), steps: int = 10, warmup: int = 2, pairs: int = 4,
                  device: str | torch.device = "auto", log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Pairs/s of the ``dsnet predict`` path on a folder of JPEG pairs (decode, resize, predict, save
    the mask and depth PNGs, one pair per call as the command does) next to the network's forward
    passes alone, at each of ``sizes``: one pass at the input's size (``--size N``) and the default
    plan (mask and depth at their own scales). Medians over ``steps`` steps of ``pairs`` pairs
    after ``warmup``; the overhead is the predict path's time over the forward passes' time, less 1.
    Returns a JSON-able dict that :func:`format_predict` prints."""
    from pathlib import Path

    from dsnet.device import pick_device
    from dsnet.inference import PredictOptions, plan_sizes, predict_files
    from dsnet.shapes import size_problem

    problems = [p for p in (size_problem("size", s) for s in sizes) if p]
    if problems:
        raise ValueError(problems[0])
    if steps < 1 or warmup < 0 or pairs < 1:
        raise ValueError("need steps >= 1, warmup >= 0 and pairs (--batch-size) >= 1")
    device = pick_device(device)
    log = log or (lambda message: None)
    predictor, model_name = _bench_predictor(device)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "device_type": device.type, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "model": model_name, "train_size": predictor.train_size, "pairs_per_step": pairs, "steps": steps,
        "warmup": warmup, "load_before": _load(), "rows": []}
    count = warmup + steps
    for size in sizes:
        plan = plan_sizes(size, size, None, predictor.train_size)
        row: dict[str, Any] = {"size": size, "mask_size": list(plan[0]), "depth_size": list(plan[1])}
        with tempfile.TemporaryDirectory(prefix="dsnet-bench-predict-") as root:
            log(f"{size}px: writing {count * pairs} JPEG pairs")
            files = _write_pairs(root, size, count * pairs)
            chunks = [files[i * pairs:(i + 1) * pairs] for i in range(count)]
            for key, size_arg in (("one_pass", size), ("default", None)):
                log(f"{size}px: dsnet predict path, {'--size %d' % size if size_arg else 'default plan'}")
                times = _timed((lambda chunk=chunk, s=size_arg: predict_files(
                    predictor, chunk, Path(root) / "out", PredictOptions(size=s), figures=False)
                    for chunk in chunks), warmup, device)
                row[f"predict_{key}_pairs_per_s"] = _rate(times, pairs)
        for key, net_sizes in (("one_pass", [(size, size)]), ("default", list(dict.fromkeys(plan)))):
            log(f"{size}px: forward passes alone at {net_sizes}")
            times = _timed(_forward_steps(predictor.model.eval(), net_sizes, pairs, count, device), warmup, device)
            row[f"forward_{key}_pairs_per_s"] = _rate(times, pairs)
            row[f"overhead_{key}_percent"] = 100 * (row[f"forward_{key}_pairs_per_s"]
                                                    / row[f"predict_{key}_pairs_per_s"] - 1)
        report["rows"].append(row)
    report["load_after"] = _load()
    return report


def format_predict(report: dict[str, Any]) -> str:
    """The predict-path report as a plain-text table: per size, each forward measurement and the
    dsnet predict path (decode, resize, predict, save) that runs those passes."""
    trained = f" (trained at {report['train_size']} px)" if report.get("train_size") else ""
    lines = [f"{report['device']}, torch {report['torch']}, {report['threads']} CPU threads; {report['model']}"
             f"{trained}; one pair per call as dsnet predict does; median of {report['steps']} steps of "
             f"{report['pairs_per_step']} pairs after {report['warmup']} warm-up"]
    if report.get("load_before"):
        lines.append(f"load average before {report['load_before']}, after {report.get('load_after')}")
    lines.append(f"{'size':>5}  {'path (dsnet predict: decode, resize, predict, save PNGs)':<56}{'pairs/s':>9}"
                 f"{'overhead':>10}")
    for row in report["rows"]:
        size, mask, depth = row["size"], row["mask_size"], row["depth_size"]
        plan = f"mask {mask[0]}x{mask[1]}" + (f", depth {depth[0]}x{depth[1]}" if depth != mask else " and depth")
        for key, forward, path in (
                ("one_pass", f"forward at {size}x{size}", f"dsnet predict --no-figure --size {size}"),
                ("default", f"forward, default plan: {plan}", "dsnet predict --no-figure")):
            lines.append(f"{size:>5}  {forward:<56}{row[f'forward_{key}_pairs_per_s']:>9.2f}")
            lines.append(f"{size:>5}    {path:<54}{row[f'predict_{key}_pairs_per_s']:>9.2f}"
                         f"{row[f'overhead_{key}_percent']:>+9.1f}%")
    return "\n".join(lines)


# ---------------------------------------------------------------- the renderer (dsnet data bench)
def bench_renderer(sizes: Sequence[int] = (224, 96, 64), batch_size: int = 64, repeats: int = 5,
                   device: str | torch.device = "cpu", realism: Realism | bool | str | None = None) -> dict[str, Any]:
    """Median samples/s of :func:`dsnet.scene.museum_batch` at each of ``sizes``, with ``realism``
    (anything :meth:`dsnet.scene.Realism.of` takes): one warm-up batch first, then ``repeats`` timed
    batches, each of new scenes. Raises ``ValueError`` with one sentence for a size outside 8 to
    ``dsnet.scene.MAX_SIZE``, a batch size or repeat count below 1, or an unavailable device.
    Returns a JSON-able dict that :func:`format_renderer` prints."""
    from dsnet.device import pick_device
    from dsnet.scene import Realism, museum_batch, render_problem

    problem = next((p for p in map(render_problem, sizes) if p), None) if sizes else "need at least one size"
    if problem is None and (batch_size < 1 or repeats < 1):
        problem = f"need batch_size >= 1 and repeats >= 1, not {batch_size} and {repeats}"
    if problem is not None:
        raise ValueError(problem)
    realism = Realism.of(realism)
    device = pick_device(device)
    report: dict[str, Any] = {"device": str(device), "threads": torch.get_num_threads(), "batch_size": batch_size,
                              "repeats": repeats, "realism": str(realism), "rows": []}
    for size in sizes:
        times = _timed((lambda i=i, size=size: museum_batch(range(i * batch_size, (i + 1) * batch_size), size, seed=1,
                                                            device=device, realism=realism)
                        for i in range(repeats + 1)), 1, device)
        # the median of the rates, not of the times: the two differ for an even number of repeats
        report["rows"].append({"size": size, "samples_per_s": statistics.median([batch_size / t for t in times])})
    return report


def format_renderer(report: dict[str, Any]) -> str:
    """The renderer report as plain text: the settings, then one line per image size."""
    lines = [f"device {report['device']}, {report['threads']} CPU threads, batch {report['batch_size']}, "
             f"median of {report['repeats']}, realism {report['realism']}"]
    lines += [f"{row['size']:>5} x {row['size']:<5} {row['samples_per_s']:8.1f} samples/s" for row in report["rows"]]
    return "\n".join(lines)
