# Generated from book/renderer.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
# book/renderer.md, line 43
"""A procedural museum: random rooms with paintings, human-like figures and props, ray-cast
in batches with PyTorch, with exact foreground masks and depth."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields, replace
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


# book/renderer.md, line 81
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


# book/renderer.md, line 122
_B = TypeVar("_B", bound="Batched")


class Batched:
    """Base of the scene's dataclasses: every field is a tensor whose first dimension is the
    scene in the batch, or another ``Batched``, or ``None`` (an optional part left out)."""

    def apply(self: _B, fn: Callable[[Tensor], Tensor]) -> _B:
        """A copy with ``fn`` applied to every tensor, however deep."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return type(self)(**{k: v if v is None else v.apply(fn) if isinstance(v, Batched) else fn(v)
                             for k, v in values.items()})

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
class RoomLook(Batched):
    """Photographs on the room (realism ``textures``). Per surface class (floor, walls, ceiling),
    ``(B, 3)`` each: the texture ``tex`` (its index in ``texture_images()``), its ``scale`` in
    metres per repeat, its ``angle``, its ``shift`` (B, 3, 2) in repeats and the ``contrast`` of
    its detail. Per painting slot, ``(B, N_PAINTINGS)`` each: whether it shows a ``photo`` crop
    instead of its picture, of which texture (``ptex``), with the crop's centre ``crop``
    (B, N_PAINTINGS, 2) and half width and height ``crop_hw``, ``crop_hh`` in texture widths."""

    tex: Tensor
    scale: Tensor
    angle: Tensor
    shift: Tensor
    contrast: Tensor
    photo: Tensor
    ptex: Tensor
    crop: Tensor
    crop_hw: Tensor
    crop_hh: Tensor


@dataclass
class Shot(Batched):
    """One photograph's camera (realism ``camera``): an ``exposure`` (B,) and a white balance,
    per-channel gains ``white`` (B, 3); sensor noise of variance ``read**2 + gain * signal``
    (``read``, ``gain`` (B,)), whose normal numbers are read from the table ``noise_bank()``
    along ``rows`` and ``cols`` (B, 2), integers: an odd stride and an offset each."""

    exposure: Tensor
    white: Tensor
    read: Tensor
    gain: Tensor
    rows: Tensor
    cols: Tensor


@dataclass
class Scene(Batched):
    """A batch of backgrounds: what BG shows; ``texture`` and ``shot`` are set only with realism."""

    room: Room
    paintings: Paintings
    light: Light
    camera: Camera
    texture: RoomLook | None = None
    shot: Shot | None = None


# book/renderer.md, line 287
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


# book/renderer.md, line 364
PAINTING_SIZE = 128


# book/renderer.md, line 369
def _sample(name: str) -> str:
    """The path of one of matplotlib's sample data files."""
    from matplotlib import cbook

    return cbook.get_sample_data(name, asfileobj=False)


def _measured_images() -> tuple[np.ndarray, np.ndarray]:
    """matplotlib's two measured images, as stored: the elevation model of the Jacksboro fault
    ``(H, W)`` and an MRI slice ``(256, 256)`` as floats. Paintings and textures crop and colour
    them each their own way."""
    import gzip

    dem = np.load(_sample("jacksboro_fault_dem.npz"))["elevation"]
    with gzip.open(_sample("s1045.ima.gz")) as f:
        mri = np.frombuffer(f.read(), np.uint16).reshape(256, 256).astype(float)
    return dem, mri


def _shaded_relief(dem: np.ndarray) -> np.ndarray:
    """An elevation model ``(H, W)`` as hill-shaded RGB ``(H, W, 3)`` in [0, 1]."""
    import matplotlib
    from matplotlib.colors import LightSource

    return LightSource(azdeg=315, altdeg=45).shade(dem, matplotlib.colormaps["gist_earth"],
                                                   blend_mode="overlay")[..., :3]


def _load_paintings() -> tuple[list[np.ndarray], list[float]]:
    import matplotlib
    from matplotlib.colors import Normalize
    from PIL import Image

    def rgb_file(name):
        im = Image.open(_sample(name)).convert("RGBA")
        canvas = Image.new("RGBA", im.size, (235, 230, 220, 255))
        return np.asarray(Image.alpha_composite(canvas, im).convert("RGB")) / 255.0

    def cmap(values, name):
        return matplotlib.colormaps[name](Normalize()(values))[..., :3]

    topo = np.load(_sample("topobathy.npz"))["topo"]
    dem, mri = _measured_images()
    gauss = np.load(_sample("axes_grid/bivariate_normal.npy"))
    images = [
        rgb_file("grace_hopper.jpg"),
        rgb_file("Minduka_Present_Blue_Pack.png"),
        rgb_file("logo2.png"),
        cmap(topo[::-1], "terrain"),
        _shaded_relief(dem),
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


# book/renderer.md, line 509
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


def room_colors(scene: Scene, t: Tensor, face: Tensor, dx: Tensor, dy: Tensor, dz: Tensor,
                pixel: Tensor | None = None) -> Tensor:
    """Colour ``(3, B, N)`` of every room pixel: a procedural pattern per surface, paintings, light;
    with ``scene.texture``, photographs too, which need the width of a pixel at 1 m, ``pixel`` (B,)."""
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
    footprint = None
    if scene.texture is not None:
        # metres of surface per pixel, larger where the ray grazes the surface
        along = torch.where(wall, torch.where(on_x, dx, dz), dy).abs().clamp(min=1e-3)
        footprint = pixel[:, None] * t * ((dx * dx + dy * dy + dz * dz).sqrt() / along).sqrt()
        rgb = rgb * surface_detail(scene.texture, cls, u, v, footprint)[None]
    rgb = paint_walls(scene.paintings, rgb, face, u, v, scene.texture, footprint)
    normal = torch.tensor([[0, 1, 0], [0, -1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 1], [0, 0, -1]],
                          dtype=t.dtype, device=t.device)[face]
    return shade(scene.light, px, py, pz, *normal.unbind(-1), rgb)


def paint_walls(paintings: Paintings, rgb: Tensor, face: Tensor, u: Tensor, v: Tensor,
                look: RoomLook | None = None, footprint: Tensor | None = None) -> Tensor:
    """``rgb`` ``(3, B, N)`` with each wall's painting (if it has one) hung, in its frame;
    ``u``, ``v`` ``(B, N)`` are the hit points' coordinates on their face. With a ``look``, some
    paintings show crops of photographs instead, sampled for the ``footprint`` (B, N) of a pixel."""
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
    if look is not None:
        texels = footprint.reshape(-1)[where] * TEXTURE_SIZE * look.crop_hw[b, k] / paintings.hw[b, k]
        photo = texture_lookup(look.ptex[b, k], look.crop[b, k, 0] + fu * look.crop_hw[b, k],
                               look.crop[b, k, 1] - fv * look.crop_hh[b, k], texels, slice(0, 3))
        picture = torch.where(look.photo[b, k][None], photo, picture)
    flat[:, where] = torch.where(inside[None], picture, paintings.frame_color[b, k].T)
    return rgb


# book/renderer.md, line 649
@dataclass
class FgLook(Batched):
    """Photographs on the foreground (realism ``fg_textures``), per capsule ``(B, N_PRIMS)``:
    texture ``tex``, ``scale`` in metres per repeat, ``angle``, ``shift`` (B, N_PRIMS, 2) and
    ``contrast`` as in ``RoomLook``; ``own``: the photograph's own colours replace the capsule's;
    ``camo``: the capsule wears the walls' colour ``wall`` (B, 3) and texture instead of its own."""

    tex: Tensor
    scale: Tensor
    angle: Tensor
    shift: Tensor
    contrast: Tensor
    own: Tensor
    camo: Tensor
    wall: Tensor


@dataclass
class Foreground(Batched):
    """What BG-FG adds: figures and props as ``N_PRIMS`` capsules per scene, with ends ``a``
    and ``b`` (B, N_PRIMS, 3) and radius ``r`` (B, N_PRIMS) in metres, striped in colours ``c1``
    and ``c2`` (B, N_PRIMS, 3) at ``freq`` stripes per metre of height (0: plain); ``valid``
    (B, N_PRIMS) says whether the capsule is in the scene. Set only with realism: ``texture``,
    the edge's ``feather`` (B,) in pixels, and the ``shot`` that photographs BG-FG."""

    a: Tensor
    b: Tensor
    r: Tensor
    c1: Tensor
    c2: Tensor
    freq: Tensor
    valid: Tensor
    texture: FgLook | None = None
    feather: Tensor | None = None
    shot: Shot | None = None


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


# book/renderer.md, line 841
def capsule_hit(o, direction, a, b, r, dd=None):
    """Ray parameter of the first hit of rays ``o + t direction`` with capsules (segment a-b, radius r),
    ``inf`` where they miss. Vectors are tuples of x, y, z tensors that broadcast; ``dd`` is
    direction.direction if the caller has it."""
    def dot(p, q):
        return p[0] * q[0] + p[1] * q[1] + p[2] * q[2]

    ba = tuple(bi - ai for ai, bi in zip(a, b))
    oa = tuple(oi - ai for ai, oi in zip(a, o))
    baba, baoa, oaoa = dot(ba, ba), dot(ba, oa), dot(oa, oa)      # per capsule
    bard, rdoa = dot(ba, direction), dot(direction, oa)              # per ray
    dd = dot(direction, direction) if dd is None else dd
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


# book/renderer.md, line 881
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
                      dirs: tuple[Tensor, Tensor, Tensor], pixel: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Colour of the pixels that see a capsule: its (maybe striped) colour, or with ``fg.texture``
    a photograph on it (``pixel`` (B,): a pixel's width at 1 m), lit.
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
    if fg.texture is not None:
        rgb = foreground_photos(fg.texture, bi, pi, P, rgb, scene.camera.rot[bi, :, 0], pixel[bi] * tt)
    # one "scene" per lit pixel: its scene's light
    lit = shade(scene.light[bi], *P[:, :, None].unbind(1), *n[:, :, None].unbind(1), rgb.T[:, :, None])
    return flat, lit[:, :, 0]


# book/renderer.md, line 1008
LOOK_DRAWS = 64            # uniforms per realism stream
TEXTURE_SIZE, TEXTURE_LEVELS = 256, 4
NOISE_ROWS, NOISE_COLS = 4096, 1024   # the noise table: 3 x 1024 rows of 1024 pixels fit in it
NOISE_SEED = 20_240_601


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


# book/renderer.md, line 1085
def _load_photos() -> list[np.ndarray]:
    import matplotlib
    from PIL import Image

    hopper = np.asarray(Image.open(_sample("grace_hopper.jpg")).convert("RGB")) / 255.0
    # square crops (top row, left column, side): flag, face, uniform, medals, backdrop, whole portrait
    crops = [(0, 0, 160), (170, 170, 180), (420, 0, 180), (420, 250, 180), (100, 382, 130), (44, 0, 512)]
    photos = [hopper[r:r + n, c:c + n] for r, c, n in crops]
    dem, mri = _measured_images()
    photos.append(_shaded_relief(dem[:, 30:374]))
    photos.append(matplotlib.colormaps["bone"](mri[40:200, 50:210] / mri.max())[..., :3])
    return photos


@functools.cache
def texture_images() -> Tensor:
    """The photographs for textures, ``(n, 256, 256, 4)``: RGB in [0, 1], then the luminance's
    z-score (mean 0, standard deviation 1 per photograph, clipped to +-3), the detail that a
    surface takes. Loaded on the first call, then shared: treat as read-only."""
    rgb = torch.from_numpy(np.stack([_resize(p, TEXTURE_SIZE) for p in _load_photos()])).float()
    lum = rgb @ torch.tensor([0.299, 0.587, 0.114])
    z = (lum - lum.mean((1, 2), keepdim=True)) / lum.std((1, 2), keepdim=True).clamp(min=1e-3)
    return torch.cat([rgb, z.clamp(-3, 3)[..., None]], -1)


@functools.cache
def texture_bank(device: torch.device | str = "cpu") -> Tensor:
    """``texture_images()`` and three halvings of it (2 x 2 means: a mip map), level after level,
    as one flat ``(4, n * (256**2 + 128**2 + 64**2 + 32**2))`` table on ``device``; made once per device."""
    x, levels = texture_images().permute(3, 0, 1, 2), []
    for _ in range(TEXTURE_LEVELS):
        levels.append(x.reshape(4, -1))
        x = torch.nn.functional.avg_pool2d(x, 2)
    return torch.cat(levels, 1).contiguous().to(device)


def texture_lookup(tex: Tensor, s: Tensor, r: Tensor, texels: Tensor, channels: int | slice) -> Tensor:
    """Texture ``tex`` at ``s`` (across) and ``r`` (down), in texture widths and repeated as in a
    mirror; read from the mip level whose texels come closest to ``texels``, a pixel's footprint in
    texels of the full resolution. All four have one shape; returns the bank's ``channels`` there
    (``slice(0, 3)``: RGB, ``(3, ...)``; 3: the detail)."""
    bank = texture_bank(s.device)
    sides = [TEXTURE_SIZE >> level for level in range(TEXTURE_LEVELS)]
    n = bank.shape[1] // sum(q * q for q in sides)
    starts = torch.tensor([n * sum(q * q for q in sides[:level]) for level in range(TEXTURE_LEVELS)], device=s.device)
    level = texels.clamp(min=1).log2().round().clamp(max=TEXTURE_LEVELS - 1).long()
    side = torch.tensor(sides, device=s.device)[level]

    def mirrored(x):                   # 0 -> 1 -> 0 -> 1 ...: each repeat flipped against the last
        return 1 - (x - 2 * torch.floor(x / 2) - 1).abs()

    ix = torch.minimum((mirrored(s) * side).long(), side - 1)
    iy = torch.minimum((mirrored(r) * side).long(), side - 1)
    return bank[channels, starts[level] + (tex * side + iy) * side + ix]


def surface_detail(look: RoomLook, cls: Tensor, u: Tensor, v: Tensor, footprint: Tensor) -> Tensor:
    """The factor ``1 + contrast * z`` ``(B, N)`` by which its photograph's detail ``z`` brightens or
    darkens each room pixel of class ``cls``, at surface coordinates ``u``, ``v`` in metres."""
    scale, ang = _pick(look.scale, cls), _pick(look.angle, cls)
    ca, sa = torch.cos(ang), torch.sin(ang)
    s = (u * ca - v * sa) / scale + _pick(look.shift[..., 0], cls)
    r = _pick(look.shift[..., 1], cls) - (u * sa + v * ca) / scale
    z = texture_lookup(_pick(look.tex, cls), s, r, footprint * TEXTURE_SIZE / scale, 3)
    return (1 + _pick(look.contrast, cls) * z).clamp(min=0)


def foreground_photos(look: FgLook, bi: Tensor, pi: Tensor, P: Tensor, rgb: Tensor, right: Tensor,
                      footprint: Tensor) -> Tensor:
    """Colours ``(n, 3)`` of foreground pixels (capsule ``pi`` of scene ``bi``, hit at ``P`` (n, 3))
    dressed in photographs, projected onto the object across the camera's ``right`` axis (n, 3)
    and down its height: the detail tints ``rgb`` (the walls' colour for a ``camo`` capsule), or
    the photograph's own colours replace it (``own``)."""
    scale, ang = look.scale[bi, pi], look.angle[bi, pi]
    across, up = (P * right).sum(-1), P[:, 1]
    ca, sa = torch.cos(ang), torch.sin(ang)
    s = (across * ca - up * sa) / scale + look.shift[bi, pi, 0]
    r = look.shift[bi, pi, 1] - (across * sa + up * ca) / scale
    texel = texture_lookup(look.tex[bi, pi], s, r, footprint * TEXTURE_SIZE / scale, slice(0, 4))
    base = torch.where(look.camo[bi, pi, None], look.wall[bi], rgb)
    tinted = base * (1 + look.contrast[bi, pi, None] * texel[3][:, None]).clamp(min=0)
    return torch.where(look.own[bi, pi, None], texel[:3].T, tinted)


# book/renderer.md, line 1221
def soft_composite(bg: Tensor, bg_fg: Tensor, mask: Tensor, feather: Tensor) -> Tensor:
    """BG-FG as a cut-out pasted onto BG, ``alpha * FG + (1 - alpha) * BG``, images ``(B, C, H, W)``:
    ``alpha`` is the hard ``mask`` (B, 1, H, W) blurred by a Gaussian of ``feather`` (B,) pixels
    (5 taps), FG outside the silhouette the mean of the FG pixels near it. Only pixels within two
    of the silhouette's edge change; the mask is not changed."""
    B, C, H, W = bg_fg.shape
    taps = torch.arange(-2, 3, device=bg.device, dtype=bg.dtype)
    w = torch.exp(-taps ** 2 / (2 * feather[:, None] ** 2))
    w = (w / w.sum(1, keepdim=True)).repeat_interleave(C + 1, 0)           # (B * (C + 1), 5)
    x = torch.cat([mask, mask * bg_fg], 1).reshape(1, -1, H, W)
    pad, conv = torch.nn.functional.pad, torch.nn.functional.conv2d
    x = conv(pad(x, (2, 2, 0, 0), mode="replicate"), w[:, None, None, :], groups=w.shape[0])
    x = conv(pad(x, (0, 0, 2, 2), mode="replicate"), w[:, None, :, None], groups=w.shape[0])
    alpha, fg_sum = x.view(B, C + 1, H, W).split([1, C], 1)
    fg = torch.where(mask > 0, bg_fg, fg_sum / alpha.clamp(min=1e-12))
    pool = torch.nn.functional.max_pool2d
    edge = (pool(mask, 5, 1, 2) > 0) & (pool(1 - mask, 5, 1, 2) > 0)
    return torch.where(edge, alpha * fg + (1 - alpha) * bg, bg_fg)


# book/renderer.md, line 1264
@functools.cache
def noise_bank(device: torch.device | str = "cpu") -> Tensor:
    """A table ``(NOISE_ROWS, NOISE_COLS)`` of standard normal numbers (float32), drawn once on the
    CPU from a fixed seed, so the same on every device; made once per device."""
    values = np.random.default_rng(NOISE_SEED).standard_normal((NOISE_ROWS, NOISE_COLS), dtype=np.float32)
    return torch.from_numpy(values).to(device)


def shot_noise(shot: Shot, shape: tuple[int, ...], device: torch.device | str) -> Tensor:
    """The normal numbers ``(B, C, H, W)`` of each shot: its rows and columns of ``noise_bank()``."""
    B, C, H, W = shape
    rows = (torch.arange(C * H, device=device) * shot.rows[:, :1] + shot.rows[:, 1:]) % NOISE_ROWS
    cols = (torch.arange(W, device=device) * shot.cols[:, :1] + shot.cols[:, 1:]) % NOISE_COLS
    bank = noise_bank(device)
    return torch.stack([bank.index_select(0, r).index_select(1, c) for r, c in zip(rows, cols)]).view(shape)


def camera_shot(image: Tensor, shot: Shot) -> Tensor:
    """``image`` (B, 3, H, W) in [0, 1] as one photograph takes it: scaled by its exposure and
    white balance, clipped like a sensor, then noise of variance ``read**2 + gain * signal``."""
    x = (image * (shot.exposure[:, None] * shot.white)[:, :, None, None]).clamp(0, 1)
    sigma = (shot.read[:, None, None, None] ** 2 + shot.gain[:, None, None, None] * x).sqrt()
    return (x + sigma * shot_noise(shot, x.shape, x.device)).clamp(0, 1)


# book/renderer.md, line 1295
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


# book/renderer.md, line 1365
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


# book/renderer.md, line 1859
if __name__ == "__main__" and __spec__ is not None:     # run as `python -m dsnet.scene`, not in a notebook
    import sys

    print("python -m dsnet.scene: a library module, not a command; "
          "run `dsnet data generate --out DIR --count N` or `dsnet data bench`", file=sys.stderr)
    sys.exit(2)
