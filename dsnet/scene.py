# Generated from book/renderer.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
"""A procedural museum: random rooms with paintings, human-like figures and props, ray-cast
in batches with PyTorch, with exact foreground masks and depth."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from typing import Callable, TypeVar

import numpy as np
import torch
from torch import Tensor

FAR = 20.0            # metres: depth 1.0 in the normalized depth maps
TILE = 8              # pixels per side of a culling tile
MAX_SIZE = 1024       # pixels per side: memory grows with its square; the training presets use 64-224
N_FIGURES, FIGURE_PRIMS = 3, 10
N_PROPS, PROP_PRIMS = 2, 3
N_PRIMS = N_FIGURES * FIGURE_PRIMS + N_PROPS * PROP_PRIMS
N_PAINTINGS = 4       # one slot per wall
ROOM_DRAWS, FG_DRAWS = 160, 400
SPLITS = {"train": 0, "val": 1, "test": 2}


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


_B = TypeVar("_B", bound="Batched")


class Batched:
    """Base of the scene's dataclasses: every field is a tensor whose first dimension is the
    scene in the batch, or another ``Batched``."""

    def apply(self: _B, fn: Callable[[Tensor], Tensor]) -> _B:
        """A copy with ``fn`` applied to every tensor, however deep."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return type(self)(**{k: v.apply(fn) if isinstance(v, Batched) else fn(v) for k, v in values.items()})

    def __getitem__(self: _B, index: slice | Tensor) -> _B:
        """The scenes ``index`` (a slice, or a tensor of scene indices) of the batch."""
        return self.apply(lambda v: v[index])

    def to(self: _B, device: torch.device | str) -> _B:
        """A copy on ``device``, floats as float32 (drawn in float64, rendered in float32)."""
        return self.apply(lambda v: v.to(device, torch.float32 if v.is_floating_point() else v.dtype))


@dataclass
class Camera(Batched):
    """A pinhole camera: ``origin`` (B, 3) in metres; ``rot`` (B, 3, 3), whose columns are its
    right, up and forward axes in world coordinates; ``focal`` (B,) ``= 1 / tan(hfov / 2)``;
    the horizontal field of view ``hfov`` and the heading ``yaw`` (B,) in radians."""

    origin: Tensor
    rot: Tensor
    focal: Tensor
    hfov: Tensor
    yaw: Tensor


@dataclass
class Light(Batched):
    """A point light at ``position`` (B, 3) with tint ``color`` (B, 3) and ``power`` (B,);
    the ``ambient`` light and the camera's ``exposure`` (B,) complete the shading."""

    position: Tensor
    color: Tensor
    power: Tensor
    ambient: Tensor
    exposure: Tensor


@dataclass
class Room(Batched):
    """The box ``size`` (B, 3): width X, height Y and depth Z in metres, and its three surface
    classes (0 floor, 1 walls, 2 ceiling): colours ``c1`` and ``c2`` (B, 3, 3); ``pattern``
    (B, 3, 4), one-hot weights of checker, stripes, grid and waves (all zero: plain), with its
    ``freq`` and ``angle`` (B, 3); a grain of two plane waves, ``grain_k`` (B, 3, 4),
    ``grain_phase`` (B, 3, 2), ``grain_amp`` (B, 3); a ``wainscot`` (B,) this high in metres
    (0: none) in ``wainscot_color`` (B, 3)."""

    size: Tensor
    c1: Tensor
    c2: Tensor
    pattern: Tensor
    freq: Tensor
    angle: Tensor
    grain_k: Tensor
    grain_phase: Tensor
    grain_amp: Tensor
    wainscot: Tensor
    wainscot_color: Tensor


@dataclass
class Paintings(Batched):
    """One slot per wall, ``(B, N_PAINTINGS)`` each; slot k hangs on face k + 2 (see
    ``room_hit``): whether it is ``hung``, its ``image`` in the bank, its centre ``u0``, ``v0``
    and half width and height ``hw``, ``hh`` in metres on the wall, ``flip`` (+-1: which way
    the image runs along the wall), the ``frame`` width and ``frame_color`` (B, N_PAINTINGS, 3)."""

    hung: Tensor
    image: Tensor
    u0: Tensor
    v0: Tensor
    hw: Tensor
    hh: Tensor
    flip: Tensor
    frame: Tensor
    frame_color: Tensor


@dataclass
class Scene(Batched):
    """A batch of backgrounds: what BG shows."""

    room: Room
    paintings: Paintings
    light: Light
    camera: Camera


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


def camera_rays(camera: Camera, size: int, padded: int) -> tuple[Tensor, Tensor, Tensor]:
    """World directions ``(B, padded**2)`` per axis of the rays through the pixel centres.
    Each ray is scaled so that its forward component is 1: a hit at parameter t is t metres in
    front of the camera (planar z-depth), which is what a depth map stores."""
    c = (torch.arange(padded, device=camera.focal.device, dtype=torch.float32) + 0.5) / size * 2 - 1
    f = camera.focal[:, None, None]
    x, y = c[None, None, :] / f, -c[None, :, None] / f
    R = camera.rot
    return tuple((x * R[:, k, 0, None, None] + y * R[:, k, 1, None, None] + R[:, k, 2, None, None])
                 .reshape(R.shape[0], -1) for k in range(3))


PAINTING_SIZE = 128


def _load_paintings() -> tuple[list[np.ndarray], list[float]]:
    import gzip

    import matplotlib
    from matplotlib import cbook
    from matplotlib.colors import LightSource, Normalize
    from PIL import Image

    def sample(name):
        return cbook.get_sample_data(name, asfileobj=False)

    def rgb_file(name):
        im = Image.open(sample(name)).convert("RGBA")
        canvas = Image.new("RGBA", im.size, (235, 230, 220, 255))
        return np.asarray(Image.alpha_composite(canvas, im).convert("RGB")) / 255.0

    def cmap(values, name):
        return matplotlib.colormaps[name](Normalize()(values))[..., :3]

    topo = np.load(sample("topobathy.npz"))["topo"]
    dem = np.load(sample("jacksboro_fault_dem.npz"))["elevation"]
    with gzip.open(sample("s1045.ima.gz")) as f:
        mri = np.frombuffer(f.read(), np.uint16).reshape(256, 256).astype(float)
    gauss = np.load(sample("axes_grid/bivariate_normal.npy"))
    images = [
        rgb_file("grace_hopper.jpg"),
        rgb_file("Minduka_Present_Blue_Pack.png"),
        rgb_file("logo2.png"),
        cmap(topo[::-1], "terrain"),
        LightSource(azdeg=315, altdeg=45).shade(dem, matplotlib.colormaps["gist_earth"], blend_mode="overlay")[..., :3],
        cmap(mri, "bone"),
        cmap(gauss, "magma"),
        cmap(np.add.outer(np.sin(np.linspace(0, 9, 64)), np.cos(np.linspace(0, 7, 64))), "twilight"),
    ]
    return images, [im.shape[1] / im.shape[0] for im in images]


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8))
    return np.asarray(im.resize((size, size), Image.BILINEAR)) / 255.0


@functools.cache
def painting_images() -> tuple[Tensor, Tensor]:
    """The paintings, ``(n, 128, 128, 3)`` floats in [0, 1], and their aspect ratios
    (width / height before resizing, float64 ``(n,)``). Loaded on the first call, then shared:
    treat them as read-only."""
    images, aspects = _load_paintings()
    pictures = torch.from_numpy(np.stack([_resize(im, PAINTING_SIZE) for im in images])).float()
    return pictures, torch.tensor(aspects, dtype=torch.float64)


@functools.cache
def painting_bank(device: torch.device | str = "cpu") -> Tensor:
    """All paintings as one ``(3, n * 128 * 128)`` table on ``device``, for lookups by flat
    index; made once per device."""
    pictures, _ = painting_images()
    return pictures.permute(3, 0, 1, 2).reshape(3, -1).contiguous().to(device)


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


def _safe(v: Tensor) -> Tensor:
    return torch.where(v >= 0, v.clamp(min=1e-9), v.clamp(max=-1e-9))


def room_hit(scene: Scene, dx: Tensor, dy: Tensor, dz: Tensor) -> tuple[Tensor, Tensor]:
    """Ray parameter and face ``(B, N)`` of the first hit of each ray ``(B, N)`` per axis with
    the inside of the room's box, from the camera. Faces: 0 floor, 1 ceiling, 2 and 3 the walls
    at -x and +x, 4 and 5 those at -z and +z."""
    X, Y, Z = (v[:, None] for v in scene.room.size.unbind(-1))
    ox, oy, oz = (v[:, None] for v in scene.camera.origin.unbind(-1))
    dx, dy, dz = _safe(dx), _safe(dy), _safe(dz)
    tx = torch.where(dx > 0, X / 2 - ox, -X / 2 - ox) / dx
    ty = torch.where(dy > 0, Y - oy, -oy) / dy
    tz = torch.where(dz > 0, Z / 2 - oz, -Z / 2 - oz) / dz
    t = torch.minimum(torch.minimum(tx, ty), tz)
    face = torch.where(t == ty, (dy > 0).long(), torch.where(t == tx, 2 + (dx > 0).long(), 4 + (dz > 0).long()))
    return t, face


def _pick(table: Tensor, index: Tensor) -> Tensor:
    """``table`` (B, k) looked up per pixel with ``index`` (B, N) in [0, k)."""
    return table.gather(1, index)


def shade(light: Light, px, py, pz, nx, ny, nz, rgb):
    """Lambert shading from a point light plus ambient light, then exposure: points ``p`` and
    unit normals ``n`` ``(B, N)`` per axis, colours ``rgb`` ``(3, B, N)``, one light per row."""
    lx, ly, lz = (v[:, None] - p for v, p in zip(light.position.unbind(-1), (px, py, pz)))
    dist2 = lx * lx + ly * ly + lz * lz
    cos = ((nx * lx + ny * ly + nz * lz) * dist2.rsqrt()).clamp(min=0)
    level = light.ambient[:, None] + light.power[:, None] * cos / (4.0 + dist2)
    gain = (level * light.exposure[:, None])[None] * light.color.T[:, :, None]
    return (rgb * gain).clamp(0, 1)


def room_colors(scene: Scene, t: Tensor, face: Tensor, dx: Tensor, dy: Tensor, dz: Tensor) -> Tensor:
    """Colour ``(3, B, N)`` of every room pixel: a procedural pattern per surface, paintings, light."""
    room = scene.room
    ox, oy, oz = (v[:, None] for v in scene.camera.origin.unbind(-1))
    px, py, pz = ox + t * dx, oy + t * dy, oz + t * dz
    on_x = (face == 2) | (face == 3)
    wall = face >= 2
    u = torch.where(wall, torch.where(on_x, pz, px), px)
    v = torch.where(wall, py, pz)
    cls = torch.where(wall, 1, torch.where(face == 0, 0, 2))     # floor, wall, ceiling
    ang, freq = _pick(room.angle, cls), _pick(room.freq, cls)
    ca, sa = torch.cos(ang), torch.sin(ang)
    uu, vv = (u * ca - v * sa) * freq, (u * sa + v * ca) * freq
    w = room.pattern
    checker = torch.remainder(uu.floor() + vv.floor(), 2)
    stripes = (uu - uu.floor() < 0.5).float()
    grid = ((uu - uu.floor() < 0.07) | (vv - vv.floor() < 0.07)).float()
    waves = 0.5 + 0.5 * torch.sin(uu * (2 * math.pi)) * torch.sin(vv * math.pi)
    s = (_pick(w[..., 0], cls) * checker + _pick(w[..., 1], cls) * stripes
         + _pick(w[..., 2], cls) * grid + _pick(w[..., 3], cls) * waves)
    k, phase = room.grain_k, room.grain_phase
    noise = (torch.sin(_pick(k[..., 0], cls) * u + _pick(k[..., 1], cls) * v + _pick(phase[..., 0], cls))
             + torch.sin(_pick(k[..., 2], cls) * u + _pick(k[..., 3], cls) * v + _pick(phase[..., 1], cls)))
    grain = 1 + 0.5 * _pick(room.grain_amp, cls) * noise
    c1 = torch.stack([_pick(room.c1[..., i], cls) for i in range(3)])
    c2 = torch.stack([_pick(room.c2[..., i], cls) for i in range(3)])
    rgb = (c1 + (c2 - c1) * s[None]) * grain[None]
    low = wall & (py < room.wainscot[:, None])
    rgb = torch.where(low[None], room.wainscot_color.T[:, :, None] * grain[None], rgb)
    rgb = paint_walls(scene.paintings, rgb, face, u, v)
    normal = torch.tensor([[0, 1, 0], [0, -1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 1], [0, 0, -1]],
                          dtype=t.dtype, device=t.device)[face]
    return shade(scene.light, px, py, pz, *normal.unbind(-1), rgb)


def paint_walls(paintings: Paintings, rgb: Tensor, face: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """``rgb`` ``(3, B, N)`` with each wall's painting (if it has one) hung, in its frame;
    ``u``, ``v`` ``(B, N)`` are the hit points' coordinates on their face."""
    bank = painting_bank(rgb.device)
    S = PAINTING_SIZE
    slot = (face - 2).clamp(min=0)
    hw, hh, fr = _pick(paintings.hw, slot), _pick(paintings.hh, slot), _pick(paintings.frame, slot)
    su = (u - _pick(paintings.u0, slot)) / hw * _pick(paintings.flip, slot)
    sv = (v - _pick(paintings.v0, slot)) / hh
    au, av = su.abs(), sv.abs()
    framed = (face >= 2) & _pick(paintings.hung, slot) & ((au - 1) * hw < fr) & ((av - 1) * hh < fr)
    where = framed.reshape(-1).nonzero().squeeze(1)
    if len(where) == 0:
        return rgb
    rgb = rgb.contiguous()
    flat = rgb.view(3, -1)
    fu, fv = su.reshape(-1)[where], sv.reshape(-1)[where]
    b = where // u.shape[1]
    k = slot.reshape(-1)[where]
    inside = (fu.abs() < 1) & (fv.abs() < 1)
    ix = ((fu + 1) * (S / 2)).long().clamp(0, S - 1)
    iy = ((1 - fv) * (S / 2)).long().clamp(0, S - 1)
    picture = bank[:, (paintings.image[b, k] * S + iy) * S + ix]
    flat[:, where] = torch.where(inside[None], picture, paintings.frame_color[b, k].T)
    return rgb


@dataclass
class Foreground(Batched):
    """What BG-FG adds: figures and props as ``N_PRIMS`` capsules per scene, with ends ``a``
    and ``b`` (B, N_PRIMS, 3) and radius ``r`` (B, N_PRIMS) in metres, striped in colours ``c1``
    and ``c2`` (B, N_PRIMS, 3) at ``freq`` stripes per metre of height (0: plain); ``valid``
    (B, N_PRIMS) says whether the capsule is in the scene."""

    a: Tensor
    b: Tensor
    r: Tensor
    c1: Tensor
    c2: Tensor
    freq: Tensor
    valid: Tensor


def _yaw_rotate(p: Tensor, yaw: Tensor, at: Tensor) -> Tensor:
    """Points ``p`` (B, n, 3) of a body frame turned by ``yaw`` about the vertical and moved to ``at``."""
    c, s = torch.cos(yaw)[:, None], torch.sin(yaw)[:, None]
    x, y, z = p.unbind(-1)
    return torch.stack([x * c + z * s + at[:, None, 0], y, -x * s + z * c + at[:, None, 2]], -1)


def figure_capsules(d: Draws, at: Tensor) -> dict[str, Tensor]:
    """A human-like figure standing at ``at`` (B, 3): head, torso, two arms and two legs in
    two segments each, as 10 capsules (a sphere is a capsule whose ends coincide)."""
    B = at.shape[0]
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


def capsule_hit(o, d, a, b, r, dd=None):
    """Ray parameter of the first hit of rays ``o + t d`` with capsules (segment a-b, radius r),
    ``inf`` where they miss. Vectors are tuples of x, y, z tensors that broadcast; ``dd`` is
    d.d if the caller has it."""
    def dot(p, q):
        return p[0] * q[0] + p[1] * q[1] + p[2] * q[2]

    ba = tuple(bi - ai for ai, bi in zip(a, b))
    oa = tuple(oi - ai for ai, oi in zip(a, o))
    baba, baoa, oaoa = dot(ba, ba), dot(ba, oa), dot(oa, oa)      # per capsule
    bard, rdoa = dot(ba, d), dot(d, oa)                              # per ray
    dd = dot(d, d) if dd is None else dd
    A = baba * dd - bard * bard
    Bh = baba * rdoa - baoa * bard
    C = baba * oaoa - baoa * baoa - r * r * baba
    h = Bh * Bh - A * C
    t_body = (-Bh - h.clamp(min=0).sqrt()) / A.clamp(min=1e-12)
    y = baoa + t_body * bard
    body = (h >= 0) & (A > 1e-12) & (y > 0) & (y < baba)
    # otherwise the nearest end cap: the sphere at a (y <= 0) or at b, with o - b = oa - ba
    at_a = y <= 0
    Bc = torch.where(at_a, rdoa, rdoa - bard)
    cc = torch.where(at_a, oaoa, oaoa - 2 * baoa + baba) - r * r
    hc = Bc * Bc - dd * cc
    t_cap = (-Bc - hc.clamp(min=0).sqrt()) / dd
    t = torch.where(body, t_body, torch.where((h >= 0) & (hc >= 0), t_cap, torch.inf))
    return torch.where(t > 1e-4, t, torch.inf)


def tiles_touched(camera: Camera, fg: Foreground, size: int, n_tiles: int) -> Tensor:
    """``(pairs, 4)``: (sample, capsule, tile row, tile column) for every tile that a capsule's
    bounding sphere may cover on screen; only those pixels are tested against it."""
    a, b = fg.a, fg.b
    centre, radius = (a + b) / 2, (b - a).norm(dim=-1) / 2 + fg.r
    q = torch.einsum("bpk,bkj->bpj", centre - camera.origin[:, None], camera.rot)   # camera frame
    x, y, z = q.unbind(-1)
    f = camera.focal[:, None]
    near = z - radius
    zs = near.clamp(min=1e-3)
    back = z + radius
    corners_x = torch.stack([(x - radius) / zs, (x - radius) / back, (x + radius) / zs, (x + radius) / back])
    corners_y = torch.stack([(y - radius) / zs, (y - radius) / back, (y + radius) / zs, (y + radius) / back])
    big = near < 0.05                              # close to or around the camera: every tile
    x0 = torch.where(big, -1e4, corners_x.min(0).values * f)
    x1 = torch.where(big, 1e4, corners_x.max(0).values * f)
    y0 = torch.where(big, -1e4, corners_y.min(0).values * f)
    y1 = torch.where(big, 1e4, corners_y.max(0).values * f)
    # ndc -> pixel column / row, then -> tile, with one pixel of margin
    col0 = ((x0 + 1) / 2 * size - 1.5).clamp(-1, 1e5).floor() / TILE
    col1 = ((x1 + 1) / 2 * size + 0.5).clamp(-1, 1e5).floor() / TILE
    row0 = ((1 - y1) / 2 * size - 1.5).clamp(-1, 1e5).floor() / TILE
    row1 = ((1 - y0) / 2 * size + 0.5).clamp(-1, 1e5).floor() / TILE
    tile = torch.arange(n_tiles, device=a.device, dtype=a.dtype)
    visible = fg.valid & (z + radius > 0)
    cols = (tile >= col0[..., None].floor()) & (tile <= col1[..., None].floor())
    rows = (tile >= row0[..., None].floor()) & (tile <= row1[..., None].floor())
    touch = visible[..., None, None] & rows[..., :, None] & cols[..., None, :]
    return touch.nonzero()


def render_foreground(camera: Camera, fg: Foreground, dirs: tuple[Tensor, Tensor, Tensor], t_room: Tensor,
                      size: int, padded: int) -> tuple[Tensor, Tensor]:
    """First hits of the rays with the capsules, tested only where they can be (tiles).
    Returns the depth buffer and the index of the capsule seen per pixel (-1: the room),
    ``(B, N)`` each like ``t_room``."""
    B, N = t_room.shape
    n_tiles = padded // TILE
    pairs = tiles_touched(camera, fg, size, n_tiles)
    t_best = t_room.reshape(-1).clone()
    who = torch.full_like(t_best, -1, dtype=torch.long)
    if len(pairs) == 0:
        return t_best.view(B, N), who.view(B, N)
    bi, pi, ty, tx = pairs.unbind(-1)
    offs = torch.arange(TILE, device=t_room.device)
    offs = (offs[:, None] * padded + offs[None, :]).reshape(-1)
    pix = bi[:, None] * N + (ty * TILE * padded + tx * TILE)[:, None] + offs[None]   # (M, T*T)
    d = tuple(c.reshape(-1)[pix] for c in dirs)
    dd = (dirs[0] * dirs[0] + dirs[1] * dirs[1] + dirs[2] * dirs[2]).reshape(-1)[pix]
    o = tuple(v[bi, None] for v in camera.origin.unbind(-1))
    a = tuple(v[bi, pi, None] for v in fg.a.unbind(-1))
    b = tuple(v[bi, pi, None] for v in fg.b.unbind(-1))
    t = capsule_hit(o, d, a, b, fg.r[bi, pi, None], dd)
    t_best.scatter_reduce_(0, pix.reshape(-1), t.reshape(-1), "amin")
    first = (t == t_best[pix]) & (t < t_room.reshape(-1)[pix])
    prim = (bi * N_PRIMS + pi)[:, None].expand_as(pix)
    who.scatter_reduce_(0, pix[first], prim[first], "amax")
    return t_best.view(B, N), who.view(B, N)


def foreground_colors(scene: Scene, fg: Foreground, who: Tensor, t: Tensor,
                      dirs: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """Colour of the pixels that see a capsule: its (maybe striped) colour, lit.
    Returns their flat indices and their colours ``(3, n)``."""
    flat = (who.reshape(-1) >= 0).nonzero().squeeze(1)
    w = who.reshape(-1)[flat]
    N = who.shape[1]
    bi = flat // N
    pi = w % N_PRIMS
    tt = t.reshape(-1)[flat]
    P = torch.stack([v[bi] + tt * c.reshape(-1)[flat] for v, c in zip(scene.camera.origin.unbind(-1), dirs)], -1)
    a, ba = fg.a[bi, pi], fg.b[bi, pi] - fg.a[bi, pi]
    s = (((P - a) * ba).sum(-1) / (ba * ba).sum(-1).clamp(min=1e-12)).clamp(0, 1)
    n = (P - a - s[:, None] * ba) / fg.r[bi, pi, None]
    stripe = (torch.sin(fg.freq[bi, pi] * P[:, 1]) > 0).float()[:, None]
    rgb = fg.c1[bi, pi] + (fg.c2[bi, pi] - fg.c1[bi, pi]) * stripe
    # one "scene" per lit pixel: its scene's light
    lit = shade(scene.light[bi], *P[:, :, None].unbind(1), *n[:, :, None].unbind(1), rgb.T[:, :, None])
    return flat, lit[:, :, 0]


def render(scene: Scene, fg: Foreground, size: int) -> dict[str, Tensor]:
    """Render a batch of scenes: ``bg`` (the room alone) and ``bg_fg`` (with its figures and
    props), ``(B, 3, size, size)`` in [0, 1]; ``mask`` and ``depth`` ``(B, 1, size, size)``."""
    padded = -(-size // TILE) * TILE
    dirs = camera_rays(scene.camera, size, padded)
    t_room, face = room_hit(scene, *dirs)
    bg = room_colors(scene, t_room, face, *dirs)
    t, who = render_foreground(scene.camera, fg, dirs, t_room, size, padded)
    flat, lit = foreground_colors(scene, fg, who, t, dirs)
    bg = bg.contiguous()
    bg_fg = bg.clone()
    bg_fg.view(3, -1)[:, flat] = lit
    B = t.shape[0]

    def image(x):
        return x.reshape(-1, B, padded, padded)[:, :, :size, :size].transpose(0, 1).contiguous()

    return dict(bg=image(bg), bg_fg=image(bg_fg), mask=image((who >= 0)[None].float()),
                depth=image((t / FAR).clamp(0, 1)[None]))


def museum_batch(indices, size: int, seed: int = 0, split: str = "train", fg_per_bg: int = 1,
                 device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """Samples ``indices`` of the synthetic museum, rendered on ``device``.

    Sample i shows background (room, camera, light) ``i // fg_per_bg`` with foreground set
    ``i % fg_per_bg``; each depends only on (seed, split, i), never on the batch around it.
    Sizes above ``MAX_SIZE`` are refused (ValueError): rendering memory grows with size**2."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, not {split!r}")
    if not 8 <= size <= MAX_SIZE or fg_per_bg < 1:
        raise ValueError(f"need a size from 8 to {MAX_SIZE} pixels (not {size}) and fg_per_bg >= 1")
    stream = SPLITS[split]
    idx = [int(i) for i in indices]
    rooms = [(seed, stream, 0, i // fg_per_bg) for i in idx]
    fgs = [(seed, stream, 1, i // fg_per_bg, i % fg_per_bg) for i in idx]
    scene = draw_scene(scene_uniforms(rooms, ROOM_DRAWS))
    fg = draw_foreground(scene_uniforms(fgs, FG_DRAWS), scene)
    scene, fg = scene.to(device), fg.to(device)
    chunk = max(1, (1 << 18) // (size * size))
    parts = []
    for s in range(0, len(idx), chunk):
        part = slice(s, s + chunk)
        parts.append(render(scene[part], fg[part], size))
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


if __name__ == "__main__" and __spec__ is not None:     # run as `python -m dsnet.scene`, not in a notebook
    import sys

    print("python -m dsnet.scene: a library module, not a command; "
          "run `dsnet data generate --out DIR --count N` or `dsnet data bench`", file=sys.stderr)
    sys.exit(2)
