"""Realism in the synthetic museum: each switch changes what it should and nothing else, the
ground truth stays exact, samples stay deterministic, and everything off is the plain renderer."""
import pytest
import torch

from dsnet import realism, scene, scene_assets, scene_parts
from dsnet.scene import Realism

SIZE = 48
INDICES = range(8)
SWITCHES = ("textures", "soft_edges", "fg_textures", "camera")


@pytest.fixture(scope="module")
def plain():
    return scene.museum_batch(INDICES, SIZE, seed=3)


@pytest.fixture(scope="module")
def each(plain):
    return {name: scene.museum_batch(INDICES, SIZE, seed=3, realism=name) for name in SWITCHES}


def _ring(mask, reach=2):
    """Pixels with both an object pixel and a room pixel within ``reach`` (a square)."""
    pool = torch.nn.functional.max_pool2d
    k = 2 * reach + 1
    return (pool(mask, k, 1, reach) > 0) & (pool(1 - mask, k, 1, reach) > 0)


def _changed(a, b):
    return (a != b).any(1, keepdim=True)


def test_off_is_the_plain_renderer(plain):
    for off in (None, False, Realism(), "none"):
        out = scene.museum_batch(INDICES, SIZE, seed=3, realism=off)
        assert all(torch.equal(out[k], plain[k]) for k in plain), off


@pytest.mark.parametrize("name", SWITCHES)
def test_ground_truth_stays_exact(plain, each, name):
    assert torch.equal(each[name]["mask"], plain["mask"]) and torch.equal(each[name]["depth"], plain["depth"])
    for key in ("bg", "bg_fg"):
        x = each[name][key]
        assert x.shape == plain[key].shape and x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1


def test_textures_change_the_room_only(plain, each):
    out, mask = each["textures"], plain["mask"].bool()
    assert _changed(out["bg"], plain["bg"]).float().mean() > 0.5            # most of the room
    assert not _changed(out["bg_fg"], plain["bg_fg"])[mask].any()             # the objects are as they were
    assert torch.equal(out["bg_fg"][~mask.expand_as(out["bg"])], out["bg"][~mask.expand_as(out["bg"])])


def test_textures_put_photographs_in_some_frames():
    rooms = scene.draw_scene(scene.scene_uniforms([(0, 0, 0, i) for i in range(64)], scene.ROOM_DRAWS))
    look, _ = scene.draw_room_look(scene.scene_uniforms([(0, 0, 2, i) for i in range(64)], scene.LOOK_DRAWS),
                                   rooms.paintings)
    assert 0.4 < look.photo.float().mean() < 0.8
    # a crop lies inside its photograph and has its frame's shape
    lo, hi = look.crop - torch.stack([look.crop_hw, look.crop_hh], -1), look.crop + torch.stack([look.crop_hw, look.crop_hh], -1)
    assert lo.min() >= 0 and hi.max() <= 1
    assert torch.allclose(look.crop_hw / look.crop_hh, rooms.paintings.hw / rooms.paintings.hh)


def test_fg_textures_change_the_objects_only(plain, each):
    out, mask = each["fg_textures"], plain["mask"].bool()
    assert torch.equal(out["bg"], plain["bg"])
    changed = _changed(out["bg_fg"], plain["bg_fg"])
    assert not changed[~mask].any() and changed[mask].float().mean() > 0.5


def test_some_objects_wear_the_walls_photograph():
    n = 400
    rooms = scene.draw_scene(scene.scene_uniforms([(0, 0, 0, i) for i in range(n)], scene.ROOM_DRAWS))
    room_look, _ = scene.draw_room_look(scene.scene_uniforms([(0, 0, 2, i) for i in range(n)], scene.LOOK_DRAWS),
                                        rooms.paintings)
    look, feather, _ = scene.draw_fg_look(scene.scene_uniforms([(0, 0, 3, i, 0) for i in range(n)], scene.LOOK_DRAWS),
                                          room_look, rooms.room.c1[:, 1])
    camo = look.camo
    assert 0.1 < camo.float().mean() < 0.3 and not (camo & look.own).any()
    walls = room_look.tex[:, 1:2].expand_as(look.tex)
    assert torch.equal(look.tex[camo], walls[camo])
    assert torch.equal(look.scale[camo], room_look.scale[:, 1:2].expand_as(look.scale)[camo])
    assert torch.equal(look.wall, rooms.room.c1[:, 1])
    # every capsule of an object is dressed alike
    first = torch.tensor([0, 10, 20, 30, 33])
    assert torch.equal(look.tex, look.tex[:, first].repeat_interleave(torch.tensor([10, 10, 10, 3, 3]), 1))
    assert 0.5 <= feather.min() and feather.max() <= 1.0


def test_camouflaged_objects_look_like_the_wall():
    """A camouflaged capsule's colour before lighting is the walls' colour tinted by the walls'
    photograph, whatever its own colour was."""
    look = scene_parts.FgLook(tex=torch.tensor([[2, 2]]), scale=torch.ones(1, 2), angle=torch.zeros(1, 2),
                              shift=torch.zeros(1, 2, 2), contrast=torch.full((1, 2), 0.2),
                              own=torch.tensor([[False, False]]), camo=torch.tensor([[True, False]]),
                              wall=torch.tensor([[0.2, 0.4, 0.6]]))
    P = torch.tensor([[0.3, 1.0, 2.0], [0.3, 1.0, 2.0]])
    own = torch.tensor([[0.9, 0.1, 0.1], [0.9, 0.1, 0.1]])
    out = realism.foreground_photos(look, torch.tensor([0, 0]), torch.tensor([0, 1]), P, own,
                                    torch.tensor([[1.0, 0.0, 0.0]] * 2), torch.full((2,), 0.001))
    ratio = out / torch.stack([look.wall[0], own[1]])
    assert torch.allclose(ratio[0], ratio[0, :1].expand(3)) and torch.allclose(ratio[0], ratio[1])


def test_soft_edges_change_only_pixels_next_to_the_silhouette(plain, each):
    out = each["soft_edges"]
    assert torch.equal(out["bg"], plain["bg"])
    changed = _changed(out["bg_fg"], plain["bg_fg"])
    ring = _ring(plain["mask"])
    assert changed.any() and not (changed & ~ring).any()
    assert (changed & ~plain["mask"].bool()).any()                  # the outside of the edge too


def test_soft_edges_paste_a_cut_out(plain, each):
    """Inside the silhouette, BG-FG = alpha * FG + (1 - alpha) * BG with one alpha in [0, 1] for
    all three channels; well inside it, alpha = 1 exactly."""
    out, mask = each["soft_edges"], plain["mask"].bool()
    bg, fg, mixed = plain["bg"], plain["bg_fg"], out["bg_fg"]
    inside = (mask & ~_ring(plain["mask"])).expand_as(bg)
    assert torch.equal(mixed[inside], fg[inside])
    edge = (mask & _ring(plain["mask"])).expand_as(bg)
    d = fg - bg
    alpha = ((mixed - bg) * d).sum(1, keepdim=True) / (d * d).sum(1, keepdim=True).clamp(min=1e-12)
    strong = (d.abs().amax(1, keepdim=True) > 0.05) & edge[:, :1]
    a = alpha[strong]
    assert a.numel() > 20 and a.min() > -1e-3 and a.max() < 1 + 1e-3
    assert ((bg + alpha * d) - mixed).abs().amax(1, keepdim=True)[strong].max() < 1e-4
    assert (a < 0.9).float().mean() > 0.2                          # edge pixels are blended


def test_soft_composite_directly():
    """A vertical edge: alpha falls from 1 to 0 across it, symmetric about it, 0.5 between."""
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4] = 1
    bg, fg = torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8) * mask
    out = realism.soft_composite(bg, fg, mask, torch.tensor([0.8]))[0, 0, 4]
    assert torch.equal(out[:2], torch.ones(2)) and torch.equal(out[6:], torch.zeros(2))
    assert out[2] > out[3] > 0.5 > out[4] > out[5] > 0
    assert out[3] + out[4] == pytest.approx(1.0) and out[2] + out[5] == pytest.approx(1.0)


def test_camera_changes_every_pixel_and_keeps_the_truth(plain, each):
    out = each["camera"]
    assert _changed(out["bg"], plain["bg"]).float().mean() > 0.9
    assert _changed(out["bg_fg"], out["bg"])[~plain["mask"].bool()].float().mean() > 0.9


def test_camera_shot_exposure_white_balance_and_noise():
    image = torch.full((2, 3, 64, 64), 0.5)
    shot = scene_parts.Shot(exposure=torch.tensor([1.0, 1.2]), white=torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.9, 1.1]]),
                            read=torch.tensor([0.02, 0.0]), gain=torch.tensor([0.0, 0.0]),
                            rows=torch.tensor([[1235, 0], [777, 99]]), cols=torch.tensor([[3, 5], [1, 0]]))
    out = realism.camera_shot(image, shot)
    assert out[0].std().item() == pytest.approx(0.02, rel=0.1) and out[0].mean().item() == pytest.approx(0.5, abs=2e-3)
    assert torch.allclose(out[1].mean((1, 2)), torch.tensor([0.6, 0.54, 0.66]))   # no noise: gains only
    # the noise grows with the signal: variance read**2 + gain * signal
    bright = scene_parts.Shot(exposure=torch.ones(2), white=torch.ones(2, 3), read=torch.zeros(2),
                              gain=torch.full((2,), 0.004), rows=torch.tensor([[1, 5], [3, 7]]),
                              cols=torch.tensor([[5, 1], [7, 2]]))
    levels = realism.camera_shot(torch.stack([torch.full((3, 64, 64), 0.1), torch.full((3, 64, 64), 0.4)]), bright)
    assert levels[0].std().item() == pytest.approx(0.02, rel=0.1) and levels[1].std().item() == pytest.approx(0.04, rel=0.1)


def test_noise_reads_each_table_entry_once_per_shot(monkeypatch):
    bank = scene_assets.noise_bank()
    assert bank.shape == (scene_assets.NOISE_ROWS, scene_assets.NOISE_COLS) and scene_assets.noise_bank() is bank
    assert abs(bank.mean()) < 0.01 and abs(bank.std() - 1) < 0.01
    shot = scene_parts.Shot(exposure=torch.ones(2), white=torch.ones(2, 3), read=torch.zeros(2), gain=torch.zeros(2),
                            rows=torch.tensor([[2_471, 4_000], [1, 0]]), cols=torch.tensor([[1_023, 17], [3, 5]]))
    shape = (2, 3, scene.MAX_SIZE, scene.MAX_SIZE)
    noise = realism.shot_noise(shot, shape, "cpu")
    assert abs(torch.corrcoef(noise.flatten(1))[0, 1]) < 0.01         # two shots: unrelated
    # with a table of entry numbers, a shot reads back which entries it used: each once
    numbers = torch.arange(scene_assets.NOISE_ROWS * scene_assets.NOISE_COLS, dtype=torch.float32).view(bank.shape)
    monkeypatch.setattr(realism, "noise_bank", lambda device: numbers)
    entries = realism.shot_noise(shot, shape, "cpu")
    assert entries[0].unique().numel() == entries[0].numel()          # the largest shot


def test_background_shot_belongs_to_the_room():
    b = scene.museum_batch([4, 5, 6], SIZE, seed=0, fg_per_bg=2, realism=True)   # 4, 5: room 2; 6: room 3
    assert torch.allclose(b["bg"][0], b["bg"][1], atol=1e-5)
    assert not torch.allclose(b["bg"][1], b["bg"][2], atol=1e-3)
    assert not torch.allclose(b["bg_fg"][0], b["bg_fg"][1], atol=1e-3)


def test_switches_do_not_interact(each):
    both = scene.museum_batch(INDICES, SIZE, seed=3, realism="textures,fg_textures")
    mask = both["mask"].bool().expand_as(both["bg"])
    assert torch.equal(both["bg_fg"][mask], each["fg_textures"]["bg_fg"][mask])
    assert torch.equal(both["bg"], each["textures"]["bg"])


def test_realism_is_deterministic_and_batch_independent():
    together = scene.museum_batch([3, 4, 5], SIZE, seed=2, realism="all")
    again = scene.museum_batch([3, 4, 5], SIZE, seed=2, realism="all")
    alone = scene.museum_batch([4], SIZE, seed=2, realism="all")
    for k in together:
        assert torch.equal(together[k], again[k]), k
        assert (together[k][1] - alone[k][0]).abs().gt(1e-4).float().mean() <= 1e-3, k
    other = scene.museum_batch([4], SIZE, seed=2, split="val", realism="all")
    assert not torch.allclose(other["bg"], alone["bg"], atol=1e-3)


def test_chunking_keeps_realism():
    many = scene.museum_batch(range(3), 300, seed=1, realism=True)      # three chunks
    one = scene.museum_batch([2], 300, seed=1, realism=True)
    for k in many:
        assert (many[k][2] - one[k][0]).abs().gt(1e-4).float().mean() <= 1e-3, k


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_cpu_and_gpu_agree_with_realism():
    cpu = scene.museum_batch(range(4), SIZE, seed=2, realism=True)
    gpu = scene.museum_batch(range(4), SIZE, seed=2, device="cuda", realism=True)
    for k in cpu:
        assert (cpu[k] - gpu[k].cpu()).abs().gt(1e-3).float().mean() <= 1e-2, k


def test_texture_bank():
    photos = scene_assets.texture_images()
    n = len(photos)
    assert photos.shape == (n, scene_assets.TEXTURE_SIZE, scene_assets.TEXTURE_SIZE, 4) and n >= 6
    assert photos[..., :3].min() >= 0 and photos[..., :3].max() <= 1
    z = photos[..., 3].flatten(1)
    assert z.mean(1).abs().max() < 0.05                        # z-scores, clipped at +-3: the
    assert 0.85 < z.std(1).min() and z.std(1).max() < 1.001    # clip only narrows them
    bank = scene_assets.texture_bank()
    assert bank is scene_assets.texture_bank() and bank.shape == (4, n * sum((256 >> k) ** 2 for k in range(4)))


def test_texture_lookup_mirrors_and_filters():
    tex = torch.zeros(5, dtype=torch.long)
    s = torch.tensor([0.3, 1.7, 2.3, -0.3, 0.3])
    r = torch.full((5,), 0.6)
    one = torch.ones(5)
    rgb = realism.texture_lookup(tex, s, r, one, slice(0, 3))
    assert rgb.shape == (3, 5)
    # repeats are mirror images: 1.7 reads 0.3, 2.3 reads 0.3, -0.3 reads 0.3
    assert torch.equal(rgb[:, 1], rgb[:, 0]) and torch.equal(rgb[:, 2], rgb[:, 0]) and torch.equal(rgb[:, 3], rgb[:, 0])
    # a footprint of 8 texels reads the 32 x 32 level: the mean of the 8 x 8 texels around
    far = realism.texture_lookup(tex[:1], torch.tensor([0.5]), torch.tensor([0.5]), torch.tensor([8.0]), 3)
    full = scene_assets.texture_images()[0, ..., 3]
    assert far.item() == pytest.approx(full[128:136, 128:136].mean().item(), abs=1e-5)


def test_realism_options_are_checked():
    assert Realism.of(True) == Realism(True, True, True, True) == Realism.parse("all")
    assert Realism.of(None) == Realism.of(False) == Realism.parse("none") == Realism()
    assert Realism.parse("textures, soft-edges") == Realism(textures=True, soft_edges=True)
    for r in (Realism(), Realism.of(True), Realism(camera=True, fg_textures=True)):
        assert Realism.parse(str(r)) == r
    with pytest.raises(ValueError, match="shiny.*textures, soft_edges, fg_textures, camera"):
        Realism.parse("textures,shiny")
    with pytest.raises(ValueError, match="unknown realism"):
        Realism.parse("")
    with pytest.raises(TypeError, match="Realism.camera must be True or False"):
        Realism(camera="yes")
    with pytest.raises(TypeError, match="realism must be"):
        Realism.of(1)
    with pytest.raises(ValueError, match="shiny"):
        scene.museum_batch([0], 16, realism="shiny")
