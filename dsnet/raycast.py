# Generated from book/renderer.md by `python -m dsnet.sync`.
# Do not edit: change the chapter and run the sync again.
# book/renderer.md, line 387
"""The ray caster of the synthetic museum: rays through the pixel centres, their first hits with
the room's box and with the capsules of the foreground (tested tile by tile), and the colours seen
there, shaded by the scene's light. It renders the scenes of :mod:`dsnet.scene_parts`."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from dsnet.realism import foreground_photos, surface_detail, texture_lookup
from dsnet.scene_assets import PAINTING_SIZE, TEXTURE_SIZE, painting_bank
from dsnet.scene_parts import N_PRIMS, Camera, Foreground, Light, Paintings, RoomLook, Scene, pick

TILE = 8              # pixels per side of a culling tile


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


# book/renderer.md, line 626
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
    ang, freq = pick(room.angle, cls), pick(room.freq, cls)
    ca, sa = torch.cos(ang), torch.sin(ang)
    uu, vv = (u * ca - v * sa) * freq, (u * sa + v * ca) * freq
    w = room.pattern
    checker = torch.remainder(uu.floor() + vv.floor(), 2)
    stripes = (uu - uu.floor() < 0.5).float()
    grid = ((uu - uu.floor() < 0.07) | (vv - vv.floor() < 0.07)).float()
    waves = 0.5 + 0.5 * torch.sin(uu * (2 * math.pi)) * torch.sin(vv * math.pi)
    s = (pick(w[..., 0], cls) * checker + pick(w[..., 1], cls) * stripes
         + pick(w[..., 2], cls) * grid + pick(w[..., 3], cls) * waves)
    k, phase = room.grain_k, room.grain_phase
    noise = (torch.sin(pick(k[..., 0], cls) * u + pick(k[..., 1], cls) * v + pick(phase[..., 0], cls))
             + torch.sin(pick(k[..., 2], cls) * u + pick(k[..., 3], cls) * v + pick(phase[..., 1], cls)))
    grain = 1 + 0.5 * pick(room.grain_amp, cls) * noise
    c1 = torch.stack([pick(room.c1[..., i], cls) for i in range(3)])
    c2 = torch.stack([pick(room.c2[..., i], cls) for i in range(3)])
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
    hw, hh, fr = pick(paintings.hw, slot), pick(paintings.hh, slot), pick(paintings.frame, slot)
    su = (u - pick(paintings.u0, slot)) / hw * pick(paintings.flip, slot)
    sv = (v - pick(paintings.v0, slot)) / hh
    au, av = su.abs(), sv.abs()
    framed = (face >= 2) & pick(paintings.hung, slot) & ((au - 1) * hw < fr) & ((av - 1) * hh < fr)
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


# book/renderer.md, line 958
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


# book/renderer.md, line 998
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
    rays = tuple(c.reshape(-1)[pix] for c in dirs)
    dd = (dirs[0] * dirs[0] + dirs[1] * dirs[1] + dirs[2] * dirs[2]).reshape(-1)[pix]
    o = tuple(v[bi, None] for v in camera.origin.unbind(-1))
    a = tuple(v[bi, pi, None] for v in fg.a.unbind(-1))
    b = tuple(v[bi, pi, None] for v in fg.b.unbind(-1))
    t = capsule_hit(o, rays, a, b, fg.r[bi, pi, None], dd)
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
