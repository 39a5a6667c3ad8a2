# Generated from book/renderer.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
# book/renderer.md, line 47
"""A procedural museum: random rooms with paintings, human-like figures and props, each drawn
from a random stream of its own, and :func:`museum_batch`, which ray-casts them in batches with
PyTorch, with exact foreground masks and depth. What a scene is made of is in
:mod:`dsnet.scene_parts`, the ray caster in :mod:`dsnet.raycast`, the imitations of photographs in
:mod:`dsnet.realism`, and the pictures they read in :mod:`dsnet.scene_assets`."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from torch import Tensor

from dsnet.raycast import TILE, camera_rays, foreground_colors, render_foreground, room_colors, room_hit
from dsnet.realism import camera_shot, soft_composite
from dsnet.scene_assets import NOISE_COLS, NOISE_ROWS, painting_images, texture_images
from dsnet.scene_parts import (FIGURE_PRIMS, N_FIGURES, N_PAINTINGS, N_PROPS, PROP_PRIMS, Camera, FgLook,
                               Foreground, Light, Paintings, Room, RoomLook, Scene, Shot)

FAR = 20.0            # metres: depth 1.0 in the normalized depth maps
MAX_SIZE = 1024       # pixels per side: memory grows with its square; the training presets use 64-224
ROOM_DRAWS, FG_DRAWS = 160, 400
SPLITS = {"train": 0, "val": 1, "test": 2}


def render_problem(size: int, split: str = "train", fg_per_bg: int = 1) -> str | None:
    """What the renderer refuses among these settings, as one sentence; None if it renders them.
    Every dataset and command that renders asks this one function."""
    if not 8 <= size <= MAX_SIZE:
        return f"size must be from 8 to {MAX_SIZE} pixels, not {size}"
    if split not in SPLITS:
        return f"split must be one of {sorted(SPLITS)}, not {split!r}"
    if fg_per_bg < 1:
        return f"fg_per_bg must be 1 or more, not {fg_per_bg}"
    return None


# book/renderer.md, line 99
def scene_uniforms(keys: list[tuple[int, ...]], n: int) -> Tensor:
    """``n`` uniforms in [0, 1) for each key, from a generator seeded by that key alone,
    so a scene never depends on the batch it is drawn in (float64, on the CPU)."""
    rows = [np.random.default_rng([int(k) for k in key]).random(n) for key in keys]
    return torch.from_numpy(np.stack(rows))


class Draws:
    """Hands out successive columns of a ``(B, n)`` table of uniforms."""

    def __init__(self, u: Tensor) -> None:
        self.u, self.used = u, 0

    def __call__(self, lo: float = 0.0, hi: float = 1.0, *shape: int) -> Tensor:
        n = math.prod(shape)
        if self.used + n > self.u.shape[1]:
            raise RuntimeError("scene needs more random numbers than were drawn")
        out = self.u[:, self.used:self.used + n].reshape(-1, *shape)
        self.used += n
        return lo + (hi - lo) * out

    def choice(self, n: int, *shape: int) -> Tensor:
        return (self(0, n, *shape).floor().long()).clamp(max=n - 1)


# book/renderer.md, line 329
def draw_camera(d: Draws, size: Tensor) -> Camera:
    """A camera at eye height behind the centre of rooms of ``size`` (B, 3), looking across them."""
    X, Y, Z = size.unbind(-1)
    yaw, pitch, roll = d(-math.pi, math.pi), d(-0.45, 0.15), d(-0.05, 0.05)
    hfov = d(math.radians(45), math.radians(95))
    height = torch.minimum(d(0.9, 2.1), Y - 0.4)
    back, side = d(0.1, 0.9), d(-0.6, 0.6)
    fwd = torch.stack([torch.sin(yaw), torch.cos(yaw)], -1)          # (x, z)
    lat = torch.stack([torch.cos(yaw), -torch.sin(yaw)], -1)
    half = torch.stack([X, Z], -1) / 2 - 0.5
    xz = -fwd * back[:, None] * half + lat * side[:, None] * half
    xz = torch.maximum(torch.minimum(xz, half), -half)
    origin = torch.stack([xz[:, 0], height, xz[:, 1]], -1)
    f = torch.stack([torch.cos(pitch) * torch.sin(yaw), torch.sin(pitch), torch.cos(pitch) * torch.cos(yaw)], -1)
    r = torch.stack([torch.cos(yaw), torch.zeros_like(yaw), -torch.sin(yaw)], -1)
    up = torch.linalg.cross(f, r)
    cr, sr = torch.cos(roll)[:, None], torch.sin(roll)[:, None]
    r, up = cr * r + sr * up, -sr * r + cr * up
    return Camera(origin, torch.stack([r, up, f], -1), 1 / torch.tan(hfov / 2), hfov, yaw)


def draw_room(d: Draws, size: Tensor) -> Room:
    """The surfaces of rooms of ``size`` (B, 3): per class two colours, a pattern and a grain."""
    base = d(0.1, 0.95, 3, 3)
    other = d(0.05, 0.95, 3, 3)
    contrast = d(0.1, 1.0, 3, 1)
    c2 = base + contrast * (other - base) * (d(0, 1, 3, 1) < 0.6)
    kind = d.choice(5, 3)                                              # 4 = plain
    pattern = torch.nn.functional.one_hot(kind, 5)[..., :4].double()
    freq = d(0.4, 4.0, 3)
    angle = d(0, math.pi, 3) * (d(0, 1, 3) < 0.5)
    grain_k, grain_phase, grain_amp = d(-6, 6, 3, 4), d(0, 2 * math.pi, 3, 2), d(0.0, 0.25, 3)
    wainscot = torch.where(d() < 0.4, d(0.6, 1.3), torch.zeros_like(size[:, 0]))
    return Room(size, base, c2, pattern, freq, angle, grain_k, grain_phase, grain_amp, wainscot,
                wainscot_color=d(0.1, 0.9, 3))


def draw_scene(u: Tensor) -> Scene:
    """Backgrounds from a table of uniforms ``u`` (B, ROOM_DRAWS): a room's size, its camera,
    its light, its surfaces and its paintings."""
    d = Draws(u)
    X, Z, Y = d(4.0, 14.0), d(4.0, 14.0), d(2.7, 5.0)
    size = torch.stack([X, Y, Z], -1)
    camera = draw_camera(d, size)
    position = torch.stack([d(-0.45, 0.45) * X, Y - d(0.1, 0.6), d(-0.45, 0.45) * Z], -1)
    tint = d(0.7, 1.0, 3)
    room = draw_room(d, size)
    paintings = draw_paintings(d, size)
    light = Light(position, tint / tint.max(-1, keepdim=True).values, power=d(6.0, 30.0),
                  ambient=d(0.25, 0.6), exposure=d(0.75, 1.25))
    return Scene(room, paintings, light, camera)


# book/renderer.md, line 568
def draw_paintings(d: Draws, size: Tensor) -> Paintings:
    """A framed picture on each wall of rooms of ``size`` (B, 3), most of the time, as large
    as the wall allows and at about eye height."""
    B, X, Y, Z = size.shape[0], *size.unbind(-1)
    wall = 2 + torch.arange(N_PAINTINGS).expand(B, -1)               # faces 2..5
    length = torch.where(wall < 4, Z[:, None], X[:, None])
    aspects = painting_images()[1]
    image = d.choice(len(aspects), N_PAINTINGS)
    aspect = aspects.to(size.dtype)[image]
    hh = d(0.25, 0.8, N_PAINTINGS)
    hh = torch.minimum(hh, (Y[:, None] - 0.6) / 2)
    hw = torch.minimum(hh * aspect, length / 2 - 0.5)
    hh = hw / aspect
    u0 = d(-0.5, 0.5, N_PAINTINGS) * (length - 2 * hw - 0.4).clamp(min=0)
    v0 = torch.minimum(d(1.3, 2.0, N_PAINTINGS), Y[:, None] - hh - 0.3)
    frame = d(0.02, 0.12, N_PAINTINGS) * (d(0, 1, N_PAINTINGS) < 0.8)
    frame_color = d(0.05, 0.9, N_PAINTINGS, 3) * d(0.3, 1.0, N_PAINTINGS, 1)
    flip = torch.where(d(0, 1, N_PAINTINGS) < 0.5, -1.0, 1.0).double()
    hung = d(0, 1, N_PAINTINGS) < 0.65
    return Paintings(hung, image, u0, v0, hw, hh, flip, frame, frame_color)


# book/renderer.md, line 803
def _yaw_rotate(p: Tensor, yaw: Tensor, at: Tensor) -> Tensor:
    """Points ``p`` (B, n, 3) of a body frame turned by ``yaw`` about the vertical and moved to ``at``."""
    c, s = torch.cos(yaw)[:, None], torch.sin(yaw)[:, None]
    x, y, z = p.unbind(-1)
    return torch.stack([x * c + z * s + at[:, None, 0], y, -x * s + z * c + at[:, None, 2]], -1)


def figure_capsules(d: Draws, at: Tensor) -> dict[str, Tensor]:
    """A human-like figure standing at ``at`` (B, 3): head, torso, two arms and two legs in
    two segments each, as 10 capsules (a sphere is a capsule whose ends coincide)."""
    h = d(1.0, 1.95)                                    # height, children to tall adults
    girth = d(0.8, 1.35)
    yaw = d(-math.pi, math.pi)
    rl, ra = 0.036 * h * girth, 0.028 * h * girth     # leg and arm radii
    rt = 0.085 * h * girth
    head_r = 0.062 * h
    z = torch.zeros_like(h)

    def pt(x, y, zz):
        return torch.stack([x, y, zz], -1)

    head = pt(z, h - head_r, z)
    neck, pelvis = pt(z, 0.80 * h, z), pt(z, 0.56 * h, z)
    points_a, points_b, radii = [head, neck], [head, pelvis], [head_r, rt]
    for side in (-1.0, 1.0):
        # legs: the thigh swings forward or back, the shin hangs to the floor
        swing, knee_bend = d(-0.5, 0.5), d(0.0, 0.6)
        hip = pt(side * 0.055 * h * girth, 0.50 * h, z)
        knee = hip + pt(z + side * 0.01 * h, -0.25 * h * torch.cos(swing), 0.25 * h * torch.sin(swing))
        shin = torch.stack([z, -torch.cos(swing - knee_bend), torch.sin(swing - knee_bend)], -1)
        foot = knee + shin * ((knee[:, 1] - rl) / torch.cos(swing - knee_bend))[:, None]
        # arms: raised sideways (abduction), swung forward or back, bent at the elbow
        abduct, swing, bend = d(0.05, 1.7) * (d() < 0.5) + d(0.05, 0.4), d(-0.8, 0.8), d(0.0, 1.6)
        shoulder = pt(side * (rt + 0.5 * ra), 0.80 * h, z)
        upper = torch.stack([side * torch.sin(abduct), -torch.cos(abduct) * torch.cos(swing),
                             torch.cos(abduct) * torch.sin(swing)], -1)
        elbow = shoulder + 0.16 * h[:, None] * upper
        fore = torch.cos(bend)[:, None] * upper + torch.sin(bend)[:, None] * pt(z, z, z + 1)
        hand = elbow + 0.15 * h[:, None] * fore / fore.norm(dim=-1, keepdim=True)
        points_a += [hip, knee, shoulder, elbow]
        points_b += [knee, foot, elbow, hand]
        radii += [rl * 1.25, rl, ra * 1.15, ra]
    a = _yaw_rotate(torch.stack(points_a, 1), yaw, at)
    b = _yaw_rotate(torch.stack(points_b, 1), yaw, at)
    r = torch.stack(radii, 1)
    # colours: skin, shirt (maybe striped), trousers; long sleeves sometimes
    tone = d()[:, None]
    light, dark = torch.tensor([0.96, 0.80, 0.69], dtype=h.dtype), torch.tensor([0.30, 0.19, 0.12], dtype=h.dtype)
    skin = (1 - tone) * light + tone * dark
    shirt, shirt2, trousers = d(0.03, 0.97, 3), d(0.03, 0.97, 3), d(0.03, 0.75, 3)
    stripes = torch.where(d() < 0.5, d(8.0, 40.0), torch.zeros_like(h))
    sleeves = d() < 0.4
    forearm = torch.where(sleeves[:, None], shirt, skin)
    #            head  torso  thigh  shin  upper fore  (x2)
    c1 = torch.stack([skin, shirt] + [trousers, trousers, shirt, forearm] * 2, 1)
    c2 = torch.stack([skin, shirt2] + [trousers, trousers, shirt2, torch.where(sleeves[:, None], shirt2, skin)] * 2, 1)
    freq = torch.stack([z, stripes] + [z, z, stripes, stripes * sleeves] * 2, 1)
    return dict(a=a, b=b, r=r, c1=c1, c2=c2, freq=freq)


def prop_capsules(d: Draws, at: Tensor) -> dict[str, Tensor]:
    """Something else standing on the floor, as 3 capsules: a plinth with a bust, a ball
    with two smaller ones, or a bench."""
    kind = d.choice(3)[:, None, None]
    size = d(0.6, 1.4)[:, None]
    yaw = d(-math.pi, math.pi)
    z = torch.zeros_like(size)

    def pts(*rows):
        return torch.stack([torch.cat(row, -1) for row in rows], 1) * size[:, :, None]

    # plinth: a thick column, a sphere on top, a smaller sphere beside it
    ph = d(0.6, 1.6)[:, None]
    pr = d(0.15, 0.35)[:, None]
    plinth_a = pts((z, pr, z), (z, ph + 1.6 * pr, z), (z + pr, ph + 0.5 * pr, z))
    plinth_b = pts((z, ph, z), (z, ph + 1.6 * pr, z), (z + pr, ph + 0.5 * pr, z))
    plinth_r = torch.cat([pr, 0.8 * pr, 0.3 * pr], -1) * size
    # balls: three spheres resting on the floor
    br = d(0.15, 0.45, 3)
    off = d(-0.8, 0.8, 3, 2)
    off[:, 0] = 0
    ball_a = torch.stack([off[..., 0], br, off[..., 1]], -1) * size[:, :, None]
    ball_b, ball_r = ball_a, br * size
    # bench: a seat and two legs
    bl, bh = d(0.5, 1.1)[:, None], d(0.35, 0.55)[:, None]
    bench_a = pts((-bl, bh, z), (-0.8 * bl, z + 0.06, z), (0.8 * bl, z + 0.06, z))
    bench_b = pts((bl, bh, z), (-0.8 * bl, bh, z), (0.8 * bl, bh, z))
    bench_r = torch.cat([z + 0.09, z + 0.05, z + 0.05], -1) * size
    a = torch.where(kind == 0, plinth_a, torch.where(kind == 1, ball_a, bench_a))
    b = torch.where(kind == 0, plinth_b, torch.where(kind == 1, ball_b, bench_b))
    r = torch.where(kind[..., 0] == 0, plinth_r, torch.where(kind[..., 0] == 1, ball_r, bench_r))
    a, b = _yaw_rotate(a, yaw, at), _yaw_rotate(b, yaw, at)
    c1 = d(0.05, 0.95, 3, 3)
    c2 = c1 * d(0.3, 1.0, 3, 1)
    freq = torch.where(d(0, 1, 3) < 0.3, d(5.0, 30.0, 3), torch.zeros_like(c1[..., 0]))
    return dict(a=a, b=b, r=r, c1=c1, c2=c2, freq=freq)


def draw_foreground(u: Tensor, scene: Scene) -> Foreground:
    """1-3 figures and 0-2 props standing on the floor of each scene, mostly in front of its
    camera, from a table of uniforms ``u`` (B, FG_DRAWS)."""
    d = Draws(u)
    n_fig, n_prop = 1 + d.choice(N_FIGURES), d.choice(N_PROPS + 1)
    X, Y, Z = scene.room.size.unbind(-1)
    o = scene.camera.origin
    parts, valid = [], []
    for k in range(N_FIGURES + N_PROPS):
        # a direction within the horizontal field of view, a distance up to the wall
        phi = scene.camera.yaw + d(-0.5, 0.5) * scene.camera.hfov
        s, c = torch.sin(phi), torch.cos(phi)
        tx = torch.where(s > 0, (X / 2 - 0.35 - o[:, 0]) / s.clamp(min=1e-9),
                         (-X / 2 + 0.35 - o[:, 0]) / s.clamp(max=-1e-9))
        tz = torch.where(c > 0, (Z / 2 - 0.35 - o[:, 2]) / c.clamp(min=1e-9),
                         (-Z / 2 + 0.35 - o[:, 2]) / c.clamp(max=-1e-9))
        reach = torch.minimum(tx, tz).clamp(min=0.0)
        dist = torch.minimum(0.9 + (reach - 0.9).clamp(min=0) * d() ** 1.3, reach.clamp(min=0.9))
        at = torch.stack([o[:, 0] + s * dist, torch.zeros_like(dist), o[:, 2] + c * dist], -1)
        if k < N_FIGURES:
            parts.append(figure_capsules(d, at))
            valid.append((k < n_fig)[:, None].expand(-1, FIGURE_PRIMS))
        else:
            parts.append(prop_capsules(d, at))
            valid.append((k - N_FIGURES < n_prop)[:, None].expand(-1, PROP_PRIMS))
    return Foreground(**{key: torch.cat([p[key] for p in parts], 1) for key in parts[0]},
                      valid=torch.cat(valid, 1))


# book/renderer.md, line 1127
LOOK_DRAWS = 64            # uniforms per realism stream


@dataclass(frozen=True)
class Realism:
    """Which imitations of photographs the renderer adds; all off by default, and then its samples
    are the plain renderer's, bit for bit.

    ``textures``: photographs on floors, walls and ceilings, and in some frames;
    ``soft_edges``: the foreground pasted like a cut-out, through a feathered, anti-aliased alpha;
    ``fg_textures``: figures and props dressed in photographs, a fifth in the walls' own;
    ``camera``: BG and BG-FG as two shots, each with its own exposure, white balance and noise."""

    textures: bool = False
    soft_edges: bool = False
    fg_textures: bool = False
    camera: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            if not isinstance(getattr(self, f.name), bool):
                raise TypeError(f"Realism.{f.name} must be True or False, not {getattr(self, f.name)!r}")

    @classmethod
    def of(cls, value: Realism | bool | str | None) -> Realism:
        """``value`` as a ``Realism``: ``True`` is all four, ``False`` or ``None`` none, text is parsed."""
        if isinstance(value, cls):
            return value
        if value is None or isinstance(value, bool):
            return cls(*[bool(value)] * len(fields(cls)))
        if isinstance(value, str):
            return cls.parse(value)
        raise TypeError(f"realism must be a Realism, True, False, None or switch names, not {type(value).__name__}")

    @classmethod
    def parse(cls, text: str) -> Realism:
        """``"all"``, ``"none"``, or switch names separated by commas (``-`` may stand for ``_``)."""
        names = [n.strip().replace("-", "_") for n in text.split(",") if n.strip()]
        known = [f.name for f in fields(cls)]
        if names in (["all"], ["none"]):
            return cls(*[names == ["all"]] * len(known))
        unknown = [n for n in names if n not in known] if names else [text]
        if unknown:
            raise ValueError(f"unknown realism {unknown[0]!r}: use all, none, or some of {', '.join(known)}")
        return cls(**{n: True for n in names})

    def __str__(self) -> str:
        on = [f.name for f in fields(self) if getattr(self, f.name)]
        return "all" if len(on) == len(fields(self)) else ",".join(on) or "none"


# book/renderer.md, line 1451
def draw_shot(d: Draws) -> Shot:
    """One photograph's camera: exposure within +-15 %, white balance within +-5 % per channel,
    noise from none to a dim room's (its level squared: most shots are clean)."""
    level = d() ** 2
    walk = torch.stack([2 * d(0, NOISE_ROWS // 2).floor() + 1, d(0, NOISE_ROWS).floor(),
                        2 * d(0, NOISE_COLS // 2).floor() + 1, d(0, NOISE_COLS).floor()], -1).long()
    return Shot(exposure=torch.exp(d(-0.15, 0.15)), white=torch.exp(d(-0.05, 0.05, 3)),
                read=0.002 + 0.013 * level, gain=0.002 * level * d(), rows=walk[:, :2], cols=walk[:, 2:])


def draw_room_look(u: Tensor, paintings: Paintings) -> tuple[RoomLook, Shot]:
    """Photographs for the surfaces and frames of rooms with ``paintings``, and the BG shot's
    camera, from a table of uniforms ``u`` (B, LOOK_DRAWS)."""
    d = Draws(u)
    n = len(texture_images())
    tex, scale = d.choice(n, 3), d(0.5, 3.0, 3)
    angle = d(0, math.pi, 3) * (d(0, 1, 3) < 0.5)
    shift, contrast = d(0, 2, 3, 2), d(0.08, 0.3, 3)
    photo, ptex, half = d(0, 1, N_PAINTINGS) < 0.6, d.choice(n, N_PAINTINGS), d(0.2, 0.5, N_PAINTINGS)
    aspect = paintings.hw / paintings.hh                 # a crop of the frame's shape
    crop_hw, crop_hh = half * aspect.clamp(max=1), half * (1 / aspect).clamp(max=1)
    crop = torch.stack([crop_hw + d(0, 1, N_PAINTINGS) * (1 - 2 * crop_hw),
                        crop_hh + d(0, 1, N_PAINTINGS) * (1 - 2 * crop_hh)], -1)
    return RoomLook(tex, scale, angle, shift, contrast, photo, ptex, crop, crop_hw, crop_hh), draw_shot(d)


def draw_fg_look(u: Tensor, room: RoomLook, wall: Tensor) -> tuple[FgLook, Tensor, Shot]:
    """Photographs for each figure and prop — a fifth of them camouflaged in the walls' colour
    ``wall`` (B, 3) and photograph ``room``, a quarter of the rest in a photograph's own colours —,
    the feather of the edges (B,) in pixels and the BG-FG shot's camera, from uniforms ``u``
    (B, LOOK_DRAWS)."""
    d = Draws(u)
    k, n = N_FIGURES + N_PROPS, len(texture_images())
    tex, scale = d.choice(n, k), d(0.3, 1.5, k)
    angle = d(0, math.pi, k) * (d(0, 1, k) < 0.5)
    shift, contrast = d(0, 2, k, 2), d(0.1, 0.35, k)
    own, camo = d(0, 1, k) < 0.25, d(0, 1, k) < 0.2
    pairs = ((room.tex, tex), (room.scale, scale), (room.angle, angle), (room.contrast, contrast))
    tex, scale, angle, contrast = (torch.where(camo, walls[:, 1:2], mine) for walls, mine in pairs)
    prims = torch.tensor([FIGURE_PRIMS] * N_FIGURES + [PROP_PRIMS] * N_PROPS)
    tex, scale, angle, shift, contrast, own, camo = (x.repeat_interleave(prims, dim=1) for x in (
        tex, scale, angle, shift, contrast, own & ~camo, camo))
    return FgLook(tex, scale, angle, shift, contrast, own, camo, wall), d(0.5, 1.0), draw_shot(d)


def dress(scene: Scene, fg: Foreground, realism: Realism, room_keys: list[tuple[int, ...]],
          fg_keys: list[tuple[int, ...]]) -> tuple[Scene, Foreground]:
    """``scene`` and ``fg`` with the parts of ``realism`` that are on. Every part is drawn, on or
    off, from the streams of ``room_keys`` and ``fg_keys`` (one key per sample), so that one switch
    never changes what another does."""
    look, bg_shot = draw_room_look(scene_uniforms(room_keys, LOOK_DRAWS), scene.paintings)
    fg_look, feather, fg_shot = draw_fg_look(scene_uniforms(fg_keys, LOOK_DRAWS), look, scene.room.c1[:, 1])
    scene = replace(scene, texture=look if realism.textures else None, shot=bg_shot if realism.camera else None)
    return scene, replace(fg, texture=fg_look if realism.fg_textures else None,
                          feather=feather if realism.soft_edges else None, shot=fg_shot if realism.camera else None)


# book/renderer.md, line 1521
def render(scene: Scene, fg: Foreground, size: int) -> dict[str, Tensor]:
    """Render a batch of scenes: ``bg`` (the room alone) and ``bg_fg`` (with its figures and
    props), ``(B, 3, size, size)`` in [0, 1]; ``mask`` and ``depth`` ``(B, 1, size, size)``.
    The optional parts of ``scene`` and ``fg`` add photographs, soft edges and two shots."""
    padded = -(-size // TILE) * TILE
    dirs = camera_rays(scene.camera, size, padded)
    pixel = 2 / (size * scene.camera.focal)             # a pixel's width 1 m in front of the camera
    t_room, face = room_hit(scene, *dirs)
    bg = room_colors(scene, t_room, face, *dirs, pixel=pixel)
    t, who = render_foreground(scene.camera, fg, dirs, t_room, size, padded)
    flat, lit = foreground_colors(scene, fg, who, t, dirs, pixel=pixel)
    bg = bg.contiguous()
    bg_fg = bg.clone()
    bg_fg.view(3, -1)[:, flat] = lit
    B = t.shape[0]

    def image(x):
        return x.reshape(-1, B, padded, padded)[:, :, :size, :size].transpose(0, 1).contiguous()

    out = dict(bg=image(bg), bg_fg=image(bg_fg), mask=image((who >= 0)[None].float()),
               depth=image((t / FAR).clamp(0, 1)[None]))
    if fg.feather is not None:
        out["bg_fg"] = soft_composite(out["bg"], out["bg_fg"], out["mask"], fg.feather)
    if scene.shot is not None:
        out["bg"] = camera_shot(out["bg"], scene.shot)
    if fg.shot is not None:
        out["bg_fg"] = camera_shot(out["bg_fg"], fg.shot)
    return out


def museum_batch(indices, size: int, seed: int = 0, split: str = "train", fg_per_bg: int = 1,
                 device: torch.device | str = "cpu", realism: Realism | bool | str | None = None) -> dict[str, Tensor]:
    """Samples ``indices`` of the synthetic museum, rendered on ``device``.

    Sample i shows background (room, camera, light) ``i // fg_per_bg`` with foreground set
    ``i % fg_per_bg``; each depends only on (seed, split, i), never on the batch around it.
    ``realism`` (see ``Realism``; ``True``: all of it; default: none) imitates photographs;
    mask and depth stay exact. Sizes above ``MAX_SIZE`` are refused (ValueError): rendering
    memory grows with size**2."""
    realism = Realism.of(realism)
    problem = render_problem(size, split, fg_per_bg)
    if problem is not None:
        raise ValueError(problem)
    stream = SPLITS[split]
    idx = [int(i) for i in indices]
    rooms = [(seed, stream, 0, i // fg_per_bg) for i in idx]
    fgs = [(seed, stream, 1, i // fg_per_bg, i % fg_per_bg) for i in idx]
    scene = draw_scene(scene_uniforms(rooms, ROOM_DRAWS))
    fg = draw_foreground(scene_uniforms(fgs, FG_DRAWS), scene)
    if realism != Realism():
        scene, fg = dress(scene, fg, realism, [(seed, stream, 2, i // fg_per_bg) for i in idx],
                          [(seed, stream, 3, i // fg_per_bg, i % fg_per_bg) for i in idx])
    scene, fg = scene.to(device), fg.to(device)
    chunk = max(1, (1 << 18) // (size * size))
    parts = []
    for s in range(0, len(idx), chunk):
        part = slice(s, s + chunk)
        parts.append(render(scene[part], fg[part], size))
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


# book/renderer.md, line 2017
if __name__ == "__main__" and __spec__ is not None:     # run as `python -m dsnet.scene`, not in a notebook
    import sys

    print("python -m dsnet.scene: a library module, not a command; "
          "run `dsnet data generate --out DIR --count N` or `dsnet data bench`", file=sys.stderr)
    sys.exit(2)
