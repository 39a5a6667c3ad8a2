# Generated from book/renderer.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
# book/renderer.md, line 142
"""What a scene of the synthetic museum is made of: small dataclasses of tensors whose first
dimension is the scene in the batch, which :mod:`dsnet.scene` draws and :mod:`dsnet.raycast`
renders."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, TypeVar

import torch
from torch import Tensor

N_FIGURES, FIGURE_PRIMS = 3, 10
N_PROPS, PROP_PRIMS = 2, 3
N_PRIMS = N_FIGURES * FIGURE_PRIMS + N_PROPS * PROP_PRIMS
N_PAINTINGS = 4       # one slot per wall

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


def pick(table: Tensor, index: Tensor) -> Tensor:
    """``table`` (B, k), a value per scene and class (a surface class, a painting's slot), looked
    up per pixel with ``index`` (B, N) in [0, k): ``(B, N)``."""
    return table.gather(1, index)


# book/renderer.md, line 761
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
