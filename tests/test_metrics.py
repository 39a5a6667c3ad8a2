"""dsnet.metrics by value against hand-computed numbers, batching, devices and DDP."""
from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dsnet.losses import build_loss
from dsnet.metrics import METRICS, SegDepthMetrics, best_scale, dice_score, hard_iou, silog, soft_iou
from dsnet.model import Prediction


def _logits(rows) -> torch.Tensor:
    return torch.logit(torch.tensor(rows, dtype=torch.float64)).unsqueeze(1)


def _worked_example():
    """The chapter's two 2x2 images."""
    prediction = Prediction(
        depth=_logits([[[0.5, 0.25], [0.75, 0.1]], [[0.8, 0.2], [0.5, 0.5]]]),
        mask=_logits([[[0.9, 0.75], [0.25, 0.1]], [[0.75, 0.75], [0.25, 0.1]]]),
    )
    batch = {
        "depth": torch.tensor([[[0.5, 0.3], [0.5, 0.0]], [[0.8, 0.4], [0.5, 0.0]]], dtype=torch.float64).unsqueeze(1),
        "mask": torch.tensor([[[1.0, 1.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]]).unsqueeze(1),
    }
    return prediction, batch


def _std(values) -> float:
    """Population standard deviation, by its definition."""
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


HAND = {
    "mask_soft_iou": (1.65 / 2.35 + 0.75 / 2.1) / 2,
    "mask_iou": (1 + 1 / 2) / 2,
    "mask_dice": (1 + 2 / 3) / 2,
    "depth_rmse": math.sqrt((0.05**2 + 0.25**2 + 0.2**2) / 6),
    # image 1 rescaled by 0.8 misses by 0.1 on each of its 3 pixels; image 2, rescaled by
    # s = 0.97 / 0.93, keeps sum(t**2) - sum(p*t)**2 / sum(p**2)
    "depth_rmse_scaled": math.sqrt((0.03 + 1.05 - 0.97**2 / 0.93) / 6),
    # standard deviations of the log-ratios (0, log(0.25/0.3), log(1.5)) and (0, -log 2, 0)
    "depth_silog": (_std([0, math.log(0.25 / 0.3), math.log(1.5)]) + math.log(2) * math.sqrt(2) / 3) / 2,
    "depth_abs_rel": (0.05 / 0.3 + 0.25 / 0.5 + 0.2 / 0.4) / 6,
    "depth_delta1": 4 / 6,
    "depth_delta2": 5 / 6,
    "depth_delta3": 5 / 6,
}


def test_worked_example_by_hand():
    metrics = SegDepthMetrics()
    metrics.update(*_worked_example())
    result = metrics.compute()
    assert list(result) == list(METRICS)
    for name, value in HAND.items():
        assert result[name] == pytest.approx(value, abs=1e-12), name
    assert all(isinstance(v, float) for v in result.values())


def test_per_image_functions_by_hand():
    prediction, batch = _worked_example()
    probs = torch.sigmoid(prediction.mask)
    torch.testing.assert_close(soft_iou(probs, batch["mask"]), torch.tensor([1.65 / 2.35, 0.75 / 2.1], dtype=torch.float64))
    torch.testing.assert_close(hard_iou(probs, batch["mask"]), torch.tensor([1.0, 0.5], dtype=torch.float64))
    torch.testing.assert_close(dice_score(probs, batch["mask"]), torch.tensor([1.0, 2 / 3], dtype=torch.float64))


def test_empty_union_is_one_and_empty_target_soft_iou_is_zero():
    empty = torch.zeros(1, 1, 3, 3)
    assert hard_iou(empty, empty).item() == 1 and dice_score(empty, empty).item() == 1
    assert soft_iou(empty, empty).item() == 1
    # A soft prediction is never exactly 0: against an empty target its soft IoU is 0.
    assert soft_iou(torch.full((1, 1, 3, 3), 0.01), empty).item() == 0
    # Predicting an object where there is none: IoU and Dice 0.
    assert hard_iou(torch.ones(1, 1, 3, 3), empty).item() == 0 and dice_score(torch.ones(1, 1, 3, 3), empty).item() == 0


def test_threshold_is_strict():
    probs = torch.tensor([[[[0.5, 0.6]]]])
    target = torch.tensor([[[[1.0, 1.0]]]])
    assert hard_iou(probs, target).item() == 0.5  # 0.5 is not foreground


def test_depth_ignores_invalid_pixels_and_nan_without_any():
    metrics = SegDepthMetrics()
    depth_logits = torch.zeros(1, 1, 2, 2)  # sigmoid 0.5
    metrics.update(Prediction(depth_logits, torch.zeros(1, 1, 2, 2)),
                   {"depth": torch.tensor([[[[0.5, 1e-4], [0.0, 0.4]]]], dtype=torch.float64), "mask": torch.ones(1, 1, 2, 2)})
    result = metrics.compute()
    assert result["depth_rmse"] == pytest.approx(math.sqrt(0.01 / 2), abs=1e-9)  # only 0.5 and 0.4 count
    assert result["depth_abs_rel"] == pytest.approx(0.25 / 2, abs=1e-9)
    metrics.reset()
    metrics.update(Prediction(depth_logits, torch.zeros(1, 1, 2, 2)),
                   {"depth": torch.zeros(1, 1, 2, 2), "mask": torch.ones(1, 1, 2, 2)})
    result = metrics.compute()
    assert math.isnan(result["depth_rmse"]) and math.isnan(result["depth_delta1"])
    assert not math.isnan(result["mask_iou"])


def test_zero_depth_prediction_fails_every_delta():
    metrics = SegDepthMetrics()
    metrics.update(Prediction(torch.full((1, 1, 1, 1), -1e4), torch.zeros(1, 1, 1, 1)),
                   {"depth": torch.full((1, 1, 1, 1), 0.5), "mask": torch.ones(1, 1, 1, 1)})
    result = metrics.compute()
    assert result["depth_delta3"] == 0 and result["depth_abs_rel"] == pytest.approx(1)


def _depth_only(depth: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """The metrics of predicted depth values (not logits) against ``target``, masks all empty."""
    metrics = SegDepthMetrics()
    metrics.update(Prediction(torch.logit(depth.double()), torch.full_like(depth, -10.0)),
                   {"depth": target.double(), "mask": torch.zeros_like(target)})
    return metrics.compute()


def test_a_prediction_right_up_to_a_scale_per_image_has_zero_scaled_rmse_and_silog():
    g = torch.Generator().manual_seed(3)
    truth = 0.05 + 0.6 * torch.rand(3, 1, 8, 8, generator=g, dtype=torch.float64)
    for factors in ([1.3, 1.3, 1.3], [0.6, 1.0, 1.5]):
        result = _depth_only(truth * torch.tensor(factors, dtype=torch.float64).view(-1, 1, 1, 1), truth)
        assert result["depth_rmse_scaled"] == pytest.approx(0, abs=1e-12)
        assert result["depth_silog"] == pytest.approx(0, abs=1e-12)
        assert result["depth_rmse"] > 0.01 and result["depth_abs_rel"] > 0.2
    torch.testing.assert_close(best_scale(truth * 1.3, truth), torch.full((3,), 1 / 1.3, dtype=torch.float64))


def test_scaled_rmse_matches_the_results_chapter_by_hand():
    # book/training_results.md: per image s = sum(p*t) / sum(p*p) over valid pixels, pooled RMSE
    g = torch.Generator().manual_seed(4)
    truth = torch.rand(5, 1, 9, 9, generator=g, dtype=torch.float64) * (torch.rand(5, 1, 9, 9, generator=g) > 0.3)
    pred = torch.rand(5, 1, 9, 9, generator=g, dtype=torch.float64).clamp(0.01, 0.99)
    valid = truth > 1e-4
    scale = (pred * truth * valid).sum(dim=(1, 2, 3)) / (pred * pred * valid).sum(dim=(1, 2, 3))
    by_hand = ((pred * scale.view(-1, 1, 1, 1) - truth)[valid] ** 2).mean().sqrt().item()
    assert _depth_only(pred, truth)["depth_rmse_scaled"] == pytest.approx(by_hand, rel=1e-12)
    assert _depth_only(pred, truth)["depth_rmse_scaled"] < _depth_only(pred, truth)["depth_rmse"]


def test_silog_by_value_lambda_one_natural_log_not_times_100():
    # log-ratios (0, log 2): mean(g**2) - mean(g)**2 = (log 2)**2 / 4
    result = _depth_only(torch.tensor([[[[0.2, 0.4]]]]), torch.tensor([[[[0.2, 0.2]]]]))
    assert result["depth_silog"] == pytest.approx(math.log(2) / 2, rel=1e-12)
    per_image = silog(torch.tensor([[[[0.2, 0.4]]], [[[0.3, 0.3]]]]), torch.tensor([[[[0.2, 0.2]]], [[[0.1, 0.2]]]]))
    torch.testing.assert_close(per_image, torch.tensor([math.log(2) / 2, math.log(2) / 2], dtype=torch.float64))


def test_silog_clamps_a_zero_prediction_and_averages_over_images_with_depth():
    # A prediction of exactly 0 counts as min_depth = 1e-4: finite.
    zero_here = silog(torch.tensor([[[[0.0, 0.5]]]]), torch.tensor([[[[0.5, 0.5]]]]))
    assert zero_here.item() == pytest.approx(abs(math.log(1e-4 / 0.5)) / 2, rel=1e-12)
    # The second image has no valid pixel: nan per image, and left out of the average.
    per_image = silog(torch.tensor([[[[0.2, 0.4]]], [[[0.2, 0.4]]]]), torch.tensor([[[[0.2, 0.2]]], [[[0.0, 0.0]]]]))
    assert per_image[0].item() == pytest.approx(math.log(2) / 2) and math.isnan(per_image[1].item())
    result = _depth_only(torch.tensor([[[[0.2, 0.4]]], [[[0.2, 0.4]]]]), torch.tensor([[[[0.2, 0.2]]], [[[0.0, 0.0]]]]))
    assert result["depth_silog"] == pytest.approx(math.log(2) / 2, rel=1e-12)
    nothing = _depth_only(torch.full((1, 1, 2, 2), 0.5), torch.zeros(1, 1, 2, 2))
    assert math.isnan(nothing["depth_silog"]) and math.isnan(nothing["depth_rmse_scaled"])


def test_one_batch_of_four_equals_two_batches_of_two():
    g = torch.Generator().manual_seed(5)
    depth = torch.rand(4, 1, 10, 10, generator=g) * (torch.rand(4, 1, 10, 10, generator=g) > 0.2)
    depth[2] = 0  # an image without valid depth in the second batch
    batch = {"depth": depth, "mask": (torch.rand(4, 1, 10, 10, generator=g) > 0.6).float()}
    prediction = Prediction(torch.randn(4, 1, 10, 10, generator=g), torch.randn(4, 1, 10, 10, generator=g))
    whole = _streamed(prediction, batch, 4).compute()
    halves = _streamed(prediction, batch, 2).compute()
    for name in METRICS:
        assert halves[name] == pytest.approx(whole[name], rel=1e-12, abs=1e-15), name
    assert whole["depth_rmse_scaled"] < whole["depth_rmse"] and whole["depth_silog"] > 0


def _random_split(images: int = 23, size: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    depth = torch.rand(images, 1, size, size, generator=g) * (torch.rand(images, 1, size, size, generator=g) > 0.2)
    mask = (torch.rand(images, 1, size, size, generator=g) > 0.7).float()
    mask[3] = 0  # an image without foreground
    prediction = Prediction(torch.randn(images, 1, size, size, generator=g),
                            torch.randn(images, 1, size, size, generator=g) * 3 + 4 * mask - 2)
    return prediction, {"depth": depth, "mask": mask}


def _streamed(prediction, batch, batch_size, start=0, stop=None, metrics=None):
    metrics = metrics or SegDepthMetrics()
    stop = len(batch["mask"]) if stop is None else stop
    for i in range(start, stop, batch_size):
        part = slice(i, min(i + batch_size, stop))
        metrics.update(Prediction(prediction.depth[part], prediction.mask[part]),
                       {k: v[part] for k, v in batch.items()})
    return metrics


def test_batch_size_independence():
    prediction, batch = _random_split()
    reference = _streamed(prediction, batch, 23).compute()
    for batch_size in [1, 2, 5, 7, 22]:
        result = _streamed(prediction, batch, batch_size).compute()
        for name in METRICS:
            assert result[name] == pytest.approx(reference[name], rel=1e-12, abs=1e-15), (batch_size, name)


def test_reset_and_compute_before_update():
    metrics = SegDepthMetrics()
    with pytest.raises(RuntimeError, match="no images seen"):
        metrics.compute()
    metrics.update(*_worked_example())
    metrics.reset()
    with pytest.raises(RuntimeError, match="no images seen"):
        metrics.compute()
    metrics.update(*_worked_example())
    assert metrics.compute()["mask_iou"] == pytest.approx(0.75)


def test_state_is_float64_and_sync_without_distributed_is_a_noop():
    metrics = SegDepthMetrics()
    metrics.update(*_worked_example())
    assert metrics.state.dtype == torch.float64
    before = metrics.compute()
    assert metrics.sync() is metrics and metrics.compute() == before


def test_mismatched_shapes_are_named():
    prediction, batch = _worked_example()
    with pytest.raises(ValueError, match=r"mask: prediction shape \(2, 1, 2, 2\) does not match target shape \(2, 2, 2\)"):
        SegDepthMetrics().update(prediction, {"depth": batch["depth"], "mask": batch["mask"][:, 0]})
    with pytest.raises(ValueError, match=r"depth: prediction shape"):
        SegDepthMetrics().update(prediction, {"depth": batch["depth"][:1], "mask": batch["mask"]})


def test_a_mask_without_its_channel_reads_the_same_from_loss_and_metrics():
    # The classic mistake: a (B, H, W) mask against (B, 1, H, W) logits, which would broadcast.
    prediction = Prediction(torch.zeros(2, 1, 16, 16), torch.zeros(2, 1, 16, 16))
    batch = {"depth": torch.rand(2, 1, 16, 16), "mask": torch.ones(2, 16, 16)}
    expected = ("prediction shape (2, 1, 16, 16) does not match target shape (2, 16, 16); "
                "give both the same shape, (B, 1, H, W) for DSResNet's heads")
    with pytest.raises(ValueError) as from_loss:
        build_loss("dice:mask")(prediction, batch)
    with pytest.raises(ValueError) as from_metrics:
        SegDepthMetrics().update(prediction, batch)
    assert str(from_loss.value) == f"dice: {expected}"
    assert str(from_metrics.value) == f"mask: {expected}"


@pytest.mark.parametrize("fn", [soft_iou, hard_iou, dice_score, best_scale, silog])
def test_per_image_metrics_need_a_batch_dimension(fn):
    with pytest.raises(ValueError, match=r"expected a batch of images \(B, \.\.\.\), got shape \(4,\); add the batch"):
        fn(torch.rand(4), torch.rand(4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    prediction, batch = _random_split()
    cpu = _streamed(prediction, batch, 5).compute()
    on_gpu = _streamed(Prediction(*(t.cuda() for t in prediction)), {k: v.cuda() for k, v in batch.items()}, 5)
    assert on_gpu.state.device.type == "cuda"
    for name, value in on_gpu.compute().items():
        assert value == pytest.approx(cpu[name], rel=1e-12), name


def _ddp_worker(rank: int, world_size: int, init_file: str, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        prediction, batch = _random_split()
        # Uneven shards: rank 0 gets 15 images in batches of 4, rank 1 gets 8 in batches of 3.
        start, stop, batch_size = [(0, 15, 4), (15, 23, 3)][rank]
        metrics = _streamed(prediction, batch, batch_size, start, stop).sync()
        results[rank] = metrics.compute()
        with pytest.raises(RuntimeError, match="called twice"):
            metrics.sync()
    finally:
        dist.destroy_process_group()


def test_ddp_sync_on_two_gloo_processes(tmp_path):
    results = mp.Manager().dict()
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "store"), results), nprocs=2, join=True)
    prediction, batch = _random_split()
    reference = _streamed(prediction, batch, 23).compute()
    for rank in (0, 1):
        for name in METRICS:
            assert results[rank][name] == pytest.approx(reference[name], rel=1e-12), (rank, name)
