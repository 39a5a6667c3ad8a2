"""The synthetic museum renderer: determinism, masks, depth, occlusion."""
import math

import pytest
import torch

from dsnet import raycast, scene, scene_assets, scene_parts

SIZE = 48


@pytest.fixture(scope="module")
def batch():
    return scene.museum_batch(range(8), SIZE, seed=3)


def _close(a, b, tol=1e-4, frac=1e-3):
    """Equal up to float noise: almost every pixel within ``tol``."""
    return (a - b).abs().gt(tol).float().mean().item() <= frac


def test_shapes_and_ranges(batch):
    assert batch["bg"].shape == batch["bg_fg"].shape == (8, 3, SIZE, SIZE)
    assert batch["mask"].shape == batch["depth"].shape == (8, 1, SIZE, SIZE)
    for v in batch.values():
        assert v.dtype == torch.float32 and v.min() >= 0 and v.max() <= 1
    assert set(batch["mask"].unique().tolist()) <= {0.0, 1.0}
    assert batch["mask"].mean() > 0.01                      # there are foregrounds to see


def test_same_sample_in_any_batch():
    big = scene.museum_batch([5, 6, 7, 8, 9], SIZE, seed=3)
    for pos, i in ((0, 5), (3, 8)):
        alone = scene.museum_batch([i], SIZE, seed=3)
        for k in big:
            assert _close(big[k][pos], alone[k][0]), k


def test_chunking_does_not_change_samples():
    # a size whose chunk holds fewer samples than the batch, and one that is not a tile multiple
    many = scene.museum_batch(range(3), 300, seed=1)
    one = scene.museum_batch([2], 300, seed=1)
    for k in many:
        assert _close(many[k][2], one[k][0]), k


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_cpu_and_gpu_agree():
    cpu = scene.museum_batch(range(4), SIZE, seed=2)
    gpu = scene.museum_batch(range(4), SIZE, seed=2, device="cuda")
    for k in cpu:
        assert _close(cpu[k], gpu[k].cpu(), tol=1e-3, frac=5e-3), k


def test_seeds_and_splits_differ():
    a = scene.museum_batch([0], SIZE, seed=0, split="train")
    b = scene.museum_batch([0], SIZE, seed=0, split="val")
    c = scene.museum_batch([0], SIZE, seed=1, split="train")
    assert not torch.equal(a["bg"], b["bg"]) and not torch.equal(a["bg"], c["bg"])


def test_mask_is_exactly_where_bg_fg_differs(batch):
    changed = (batch["bg_fg"] != batch["bg"]).any(1, keepdim=True)
    mask = batch["mask"].bool()
    assert not (changed & ~mask).any()                      # no shadows: nothing else changes
    assert (mask & changed).sum() >= 0.98 * mask.sum()


def test_foreground_is_nearer_than_the_room(batch):
    room_only = scene.museum_batch(range(8), SIZE, seed=3)
    # the depth under the mask is in front of the wall the figure hides
    sc = scene.draw_scene(scene.scene_uniforms([(3, 0, 0, i) for i in range(8)], scene.ROOM_DRAWS)).to("cpu")
    dirs = raycast.camera_rays(sc.camera, SIZE, SIZE)
    t_room, _ = raycast.room_hit(sc, *dirs)
    room_depth = (t_room / scene.FAR).clamp(0, 1).view(8, 1, SIZE, SIZE)
    m = room_only["mask"].bool()
    assert (room_only["depth"][m] < room_depth[m] + 1e-6).all()
    assert torch.allclose(room_only["depth"][~m], room_depth[~m], atol=1e-6)


def test_depth_is_planar_on_walls():
    """On a plane, 1 / depth is affine in the pixel coordinates: its second differences vanish
    wherever three neighbours see the same face; and depth has no steps there."""
    sc = scene.draw_scene(scene.scene_uniforms([(0, 0, 0, i) for i in range(4)], scene.ROOM_DRAWS)).to("cpu")
    dirs = raycast.camera_rays(sc.camera, 64, 64)
    t, face = raycast.room_hit(sc, *dirs)
    t, face = t.view(4, 64, 64), face.view(4, 64, 64)
    inv = 1 / t.double()
    second = inv[:, :, 2:] - 2 * inv[:, :, 1:-1] + inv[:, :, :-2]
    same = (face[:, :, 2:] == face[:, :, 1:-1]) & (face[:, :, 1:-1] == face[:, :, :-2])
    assert (second[same].abs() / inv[:, :, 1:-1][same]).max() < 1e-4
    step = (t[:, :, 1:] - t[:, :, :-1]).abs()
    assert step[face[:, :, 1:] == face[:, :, :-1]].max() < 0.05 * t.max()
    assert 0 < t.min() and t.max() < scene.FAR               # nothing clipped at the far end


def test_depth_is_planar_metres_over_far():
    """A wall 5 m in front of the camera, facing it, is 5 / FAR = 0.25 at every pixel, corners
    included: depth maps store the distance in front of the camera plane, not along the ray."""
    from dataclasses import replace

    room = scene.draw_scene(scene.scene_uniforms([(0, 0, 0, 0)], scene.ROOM_DRAWS)).to("cpu")
    people = scene.draw_foreground(scene.scene_uniforms([(0, 0, 1, 0, 0)], scene.FG_DRAWS), room).to("cpu")
    hfov = torch.tensor([0.7])
    camera = scene_parts.Camera(origin=torch.tensor([[0.0, 2.5, 2.0]]), rot=torch.eye(3)[None],
                                focal=1 / torch.tan(hfov / 2), hfov=hfov, yaw=torch.zeros(1))
    facing = replace(room, room=replace(room.room, size=torch.tensor([[14.0, 5.0, 14.0]])), camera=camera)
    out = scene.render(facing, replace(people, valid=torch.zeros_like(people.valid)), 32)
    assert torch.allclose(out["depth"], torch.full_like(out["depth"], 5 / scene.FAR), atol=1e-5)
    assert not out["mask"].any()


def test_capsule_and_sphere_hits():
    o = (torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.0]))
    direction = (torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([1.0]))
    # sphere of radius 1 at z = 5: entered at z = 4
    a = (torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([5.0]))
    assert raycast.capsule_hit(o, direction, a, a, torch.tensor([1.0])).item() == pytest.approx(4.0)
    # vertical capsule from y=-1 to y=1 at z=5, radius 0.5: side entered at z = 4.5
    b0 = (torch.tensor([0.0]), torch.tensor([-1.0]), torch.tensor([5.0]))
    b1 = (torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([5.0]))
    assert raycast.capsule_hit(o, direction, b0, b1, torch.tensor([0.5])).item() == pytest.approx(4.5)
    # along its axis: the end cap, at z = 5 - 2 - 0.5
    c0 = (torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([5.0]))
    c1 = (torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([3.0]))
    assert raycast.capsule_hit(o, direction, c0, c1, torch.tensor([0.5])).item() == pytest.approx(2.5)
    # a miss, and a capsule behind the camera
    m = (torch.tensor([3.0]), torch.tensor([0.0]), torch.tensor([5.0]))
    assert math.isinf(raycast.capsule_hit(o, direction, m, m, torch.tensor([1.0])).item())
    back = (torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([-5.0]))
    assert math.isinf(raycast.capsule_hit(o, direction, back, back, torch.tensor([1.0])).item())


def test_backgrounds_shared_within_a_room():
    b = scene.museum_batch([4, 5, 6], SIZE, seed=0, fg_per_bg=2)     # 4, 5: room 2; 6: room 3
    assert _close(b["bg"][0], b["bg"][1]) and not _close(b["bg"][1], b["bg"][2])
    assert not torch.equal(b["bg_fg"][0], b["bg_fg"][1])


def test_scene_parts_slice_and_move_together():
    sc = scene.draw_scene(scene.scene_uniforms([(0, 0, 0, i) for i in range(5)], scene.ROOM_DRAWS))
    fg = scene.draw_foreground(scene.scene_uniforms([(0, 0, 1, i, 0) for i in range(5)], scene.FG_DRAWS), sc)
    part = sc[1:3].to("cpu")
    assert part.camera.origin.shape == (2, 3) and part.room.size.dtype == torch.float32
    assert part.paintings.image.dtype == torch.long and part.paintings.hung.dtype == torch.bool
    assert torch.equal(part.light.position, sc.light.position[1:3].float())
    assert fg.a.shape == (5, scene_parts.N_PRIMS, 3) and fg[torch.tensor([4])].valid.shape == (1, scene_parts.N_PRIMS)
    # a sub-batch renders the same pictures as the whole batch
    whole = scene.render(sc.to("cpu"), fg.to("cpu"), 32)
    some = scene.render(part, fg[1:3].to("cpu"), 32)
    for k in whole:
        assert _close(whole[k][1:3], some[k]), k


def test_paintings_are_loaded_once_and_kept_in_the_cache_only():
    before = {name: dict(vars(module)) for name, module in
              (("scene", scene), ("raycast", raycast), ("scene_assets", scene_assets))}
    scene_assets.clear_caches()
    pictures, aspects = scene_assets.painting_images()
    size = scene_assets.PAINTING_SIZE
    assert pictures.shape == (len(aspects), size, size, 3)
    assert scene_assets.painting_images()[0] is pictures                      # loaded once
    bank = scene_assets.painting_bank()
    assert bank is scene_assets.painting_bank(torch.device("cpu")) and bank.shape == (3, len(aspects) * size ** 2)
    scene.museum_batch([0], 16)
    for name, module in (("scene", scene), ("raycast", raycast), ("scene_assets", scene_assets)):
        after = vars(module)                                     # no module-level name is bound or rebound
        assert set(after) == set(before[name]) and all(after[k] is v for k, v in before[name].items())


def test_clear_caches_frees_every_table_and_renders_the_same_after():
    """``dsnet.clear_caches`` empties the renderer's one cache on every device; the images and tables
    made again after it render the same samples, equal to the bit."""
    import dsnet

    kinds = {"painting_images", "painting_bank", "texture_images", "texture_bank", "noise_bank"}
    before = scene.museum_batch(range(4), 32, seed=5, realism="all")
    assert {name for name, _ in scene_assets.CACHE.kept} == kinds
    assert {device for _, device in scene_assets.CACHE.kept} == {torch.device("cpu")}
    dsnet.clear_caches()
    assert scene_assets.CACHE.kept == {}
    after = scene.museum_batch(range(4), 32, seed=5, realism="all")
    assert {name for name, _ in scene_assets.CACHE.kept} == kinds
    for k in before:
        assert torch.equal(before[k], after[k]), k


def test_sizes_beyond_the_limit_are_refused():
    with pytest.raises(ValueError, match=str(scene.MAX_SIZE)):
        scene.museum_batch([0], scene.MAX_SIZE + 1)
    with pytest.raises(ValueError, match="split"):
        scene.museum_batch([0], 16, split="holdout")


def test_one_check_of_the_render_settings_serves_every_way_in(tmp_path):
    from dsnet.bench import bench_renderer
    from dsnet.data import SyntheticMuseum
    from dsnet.modest import ModestError, write_modest

    message = f"size must be from 8 to {scene.MAX_SIZE} pixels, not 4"
    assert scene.render_problem(4) == message and scene.render_problem(64) is None
    assert scene.render_problem(64, "dev") == "split must be one of ['test', 'train', 'val'], not 'dev'"
    assert scene.render_problem(64, fg_per_bg=0) == "fg_per_bg must be 1 or more, not 0"
    for way_in in (lambda: scene.museum_batch([0], 4), lambda: SyntheticMuseum(4), lambda: bench_renderer([4])):
        with pytest.raises(ValueError, match=message):
            way_in()
    with pytest.raises(ModestError, match=message):
        write_modest(tmp_path / "m", count=1, size=4, progress=False)
    assert not (tmp_path / "m").exists()
