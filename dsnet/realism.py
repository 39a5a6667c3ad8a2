# Generated from book/renderer.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
# book/renderer.md, line 1251
"""Imitations of photographs for the synthetic museum: photographs on its surfaces and figures, read
through a mip map; a cut-out's soft edges; and each shot's exposure, white balance and sensor noise.
They change the colours only, never the mask or the depth."""
from __future__ import annotations

import torch
from torch import Tensor

from dsnet.scene_assets import NOISE_COLS, NOISE_ROWS, TEXTURE_LEVELS, TEXTURE_SIZE, noise_bank, texture_bank
from dsnet.scene_parts import FgLook, RoomLook, Shot, pick


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
    scale, ang = pick(look.scale, cls), pick(look.angle, cls)
    ca, sa = torch.cos(ang), torch.sin(ang)
    s = (u * ca - v * sa) / scale + pick(look.shift[..., 0], cls)
    r = pick(look.shift[..., 1], cls) - (u * sa + v * ca) / scale
    z = texture_lookup(pick(look.tex, cls), s, r, footprint * TEXTURE_SIZE / scale, 3)
    return (1 + pick(look.contrast, cls) * z).clamp(min=0)


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


# book/renderer.md, line 1365
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


# book/renderer.md, line 1428
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
