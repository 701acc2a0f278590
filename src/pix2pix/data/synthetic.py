"""Procedural facades: the package's embedded labels -> photo dataset.

Pairs in the spirit of CMP Facades, drawn with numpy and Pillow only, so the demo and the tests need
no download and no committed images. Each sample is a colour-coded label map of a building facade
(the A half) and a "photo" rendered from it (the B half). Every class has its own colour, texture and
shading, so the photo is almost a function of the labels plus noise: a mapping pix2pix can learn.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pix2pix.data.writing import save_pil

MIN_SIZE = 32
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class FacadeClass:
    """One semantic class of the label maps and the exact colour that encodes it in the A images."""

    name: str
    color: tuple[int, int, int]


PALETTE: tuple[FacadeClass, ...] = (
    FacadeClass("background", (0, 0, 170)),
    FacadeClass("wall", (0, 85, 255)),
    FacadeClass("window", (0, 255, 255)),
    FacadeClass("door", (255, 170, 0)),
    FacadeClass("balcony", (170, 255, 85)),
    FacadeClass("cornice", (255, 255, 0)),
    FacadeClass("pillar", (255, 0, 0)),
    FacadeClass("roof", (170, 0, 0)),
    FacadeClass("shop", (255, 85, 255)),
)
BACKGROUND, WALL, WINDOW, DOOR, BALCONY, CORNICE, PILLAR, ROOF, SHOP = range(len(PALETTE))

_PALETTE_COLORS = np.array([c.color for c in PALETTE], dtype=np.uint8)

# Typical base colours (RGB) per class; each image draws one and jitters it, so buildings differ.
_WALL_COLORS = ((205, 190, 160), (170, 88, 62), (160, 160, 152), (212, 168, 92), (226, 220, 204), (188, 122, 110))
_DOOR_COLORS = ((105, 62, 35), (70, 45, 30), (45, 70, 60), (40, 55, 90))
_ROOF_COLORS = ((120, 62, 48), (72, 76, 88), (95, 90, 85))
_FRAME_COLORS = ((232, 230, 222), (60, 50, 42), (120, 120, 118))
_SIGN_COLORS = ((200, 40, 40), (40, 120, 60), (230, 190, 40), (30, 60, 140))


@dataclass(frozen=True)
class _Rect:
    """An axis-aligned block of one class; rows/columns are half-open [top, bottom) x [left, right)."""

    cls: int
    top: int
    left: int
    bottom: int
    right: int

    @property
    def area(self) -> tuple[slice, slice]:
        return slice(self.top, self.bottom), slice(self.left, self.right)

    @property
    def area_px(self) -> int:
        return (self.bottom - self.top) * (self.right - self.left)

    def clipped(self, size: int) -> _Rect:
        """The part inside the image (pillars and balconies at the building edge may stick out)."""
        top, left = max(self.top, 0), max(self.left, 0)
        return _Rect(self.cls, top, left, max(top, min(self.bottom, size)), max(left, min(self.right, size)))


@dataclass(frozen=True)
class _Style:
    """Per-building appearance shared by all blocks of one image (like one real building's materials)."""

    colors: np.ndarray  # (classes, 3) float base colour of every class
    frame: np.ndarray  # window and shop frame colour
    sign: np.ndarray  # shop sign colour
    brick_height: int  # brick course height in pixels, 0 for smooth plaster


# ---------------------------------------------------------------------------------------------------------
# Layout: label maps as a list of rectangles painted in order (later blocks cover earlier ones).


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _px(value: float) -> int:
    """Round a length to whole pixels, never below one, so small images keep every element visible."""
    return max(1, round(value))


def _floor_bounds(rng: np.random.Generator, top: int, bottom: int) -> list[tuple[int, int]]:
    """Split the facade body into floors, top floor first; the ground floor is a bit taller, as in reality."""
    floors = int(min(rng.integers(3, 7), max(2, (bottom - top) // 8)))
    weights = np.ones(floors)
    weights[-1] = _uniform(rng, 1.1, 1.4)
    edges = np.round(top + (bottom - top) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()]))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _column_bounds(rng: np.random.Generator, left: int, right: int) -> list[tuple[float, float]]:
    """Split the facade width into equal window bays (real facades sit on a regular grid)."""
    columns = int(min(rng.integers(2, 7), max(2, (right - left) // 7)))
    edges = np.linspace(left, right, columns + 1)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))


def _centered(cls: int, top: int, bottom: int, bay: tuple[float, float], width: int) -> _Rect:
    center = (bay[0] + bay[1]) / 2
    left = round(center - width / 2)
    return _Rect(cls, top, left, bottom, left + width)


def _pillars(
    rng: np.random.Generator, bays: list[tuple[float, float]], width: int, top: int, bottom: int
) -> list[_Rect]:
    """Pilasters at the building edges and, on some buildings, between every bay."""
    edges = [bays[0][0], bays[-1][1]]
    if rng.random() < 0.5:
        edges += [b[0] for b in bays[1:]]
    return [_Rect(PILLAR, top, round(x - width / 2), bottom, round(x - width / 2) + width) for x in edges]


def _balconies(rng: np.random.Generator, windows: list[_Rect], floor_height: int, left: int, right: int) -> list[_Rect]:
    """A railing in front of the lower part of a floor's windows: one per window or one along the floor."""
    height = _px(floor_height * _uniform(rng, 0.18, 0.28))
    overhang = _px((windows[0].right - windows[0].left) * 0.12)
    bottom = windows[0].bottom + _px(floor_height * 0.05)
    if rng.random() < 0.3:
        return [_Rect(BALCONY, bottom - height, left, bottom, right)]
    return [_Rect(BALCONY, bottom - height, w.left - overhang, bottom, w.right + overhang) for w in windows]


def _ground_floor(
    rng: np.random.Generator, size: int, floor_top: int, bays: list[tuple[float, float]], window_width: int
) -> list[_Rect]:
    """Either a shop front with an entrance or a row of tall windows around the door."""
    pitch = bays[0][1] - bays[0][0]
    height = size - floor_top
    door_bay = int(rng.integers(len(bays)))
    door_width = min(_px(pitch * _uniform(rng, 0.45, 0.7)), _px(pitch - 2))
    door_top = size - _px(height * _uniform(rng, 0.6, 0.85))
    door = _centered(DOOR, door_top, size, bays[door_bay], door_width)
    if rng.random() < 0.4:
        margin = round(pitch * 0.1)
        shop_top = floor_top + _px(height * _uniform(rng, 0.1, 0.25))
        shop = _Rect(SHOP, shop_top, round(bays[0][0]) + margin, size, round(bays[-1][1]) - margin)
        return [shop, door]
    win_top, win_bottom = floor_top + _px(height * 0.2), size - _px(height * 0.15)
    windows = [_centered(WINDOW, win_top, win_bottom, bay, window_width) for i, bay in enumerate(bays) if i != door_bay]
    return [*windows, door]


def _layout(rng: np.random.Generator, size: int) -> list[_Rect]:
    """Draw a random facade as rectangles in paint order: sky, wall, roof, pillars, ledges, openings."""
    left = round(size * _uniform(rng, 0.0, 0.08))
    right = size - round(size * _uniform(rng, 0.0, 0.08))
    roof_top = _px(size * _uniform(rng, 0.03, 0.14))
    body_top = roof_top + (_px(size * _uniform(rng, 0.04, 0.09)) if rng.random() < 0.75 else 0)
    ledge = _px(size * _uniform(rng, 0.01, 0.022))
    floors = _floor_bounds(rng, body_top, size)
    bays = _column_bounds(rng, left, right)
    pitch = bays[0][1] - bays[0][0]
    upper_height = floors[0][1] - floors[0][0]
    window_width = _px(pitch * _uniform(rng, 0.35, 0.6))
    window_height = _px((upper_height - ledge) * _uniform(rng, 0.45, 0.7))
    window_offset = _uniform(rng, 0.3, 0.6)
    balcony_rate = float(rng.choice([0.0, 0.35, 0.7]))

    rects = [_Rect(BACKGROUND, 0, 0, size, size), _Rect(WALL, body_top, left, size, right)]
    if body_top > roof_top:
        rects.append(_Rect(ROOF, roof_top, left, body_top, right))
    pillar_width = round(min(pitch * _uniform(rng, 0.08, 0.14), (pitch - window_width) / 2 - 1))
    if pillar_width >= 1 and rng.random() < 0.5:
        rects += _pillars(rng, bays, pillar_width, body_top, size)
    rects += [_Rect(CORNICE, top, left, top + ledge, right) for top, _ in floors]
    for top, bottom in floors[:-1]:
        win_top = top + ledge + round((bottom - top - ledge - window_height) * window_offset)
        windows = [_centered(WINDOW, win_top, win_top + window_height, bay, window_width) for bay in bays]
        rects += windows
        if rng.random() < balcony_rate:
            rects += _balconies(rng, windows, bottom - top, left, right)
    rects += _ground_floor(rng, size, floors[-1][0] + ledge, bays, window_width)
    return [clipped for rect in rects if (clipped := rect.clipped(size)).area_px > 0]


def _paint_labels(rects: list[_Rect], size: int) -> np.ndarray:
    labels = np.empty((size, size), dtype=np.uint8)
    for rect in rects:
        labels[rect.area] = rect.cls
    return labels


# ---------------------------------------------------------------------------------------------------------
# Rendering: every block gets a class-specific texture, then the whole image gets shadows, light and noise.


def _jitter(rng: np.random.Generator, color: tuple[int, int, int], spread: float) -> np.ndarray:
    return np.clip(np.asarray(color, dtype=np.float32) + rng.normal(0.0, spread, 3), 0, 255).astype(np.float32)


def _pick(rng: np.random.Generator, colors: tuple[tuple[int, int, int], ...], spread: float) -> np.ndarray:
    return _jitter(rng, colors[int(rng.integers(len(colors)))], spread)


def _draw_style(rng: np.random.Generator, size: int) -> _Style:
    """Base colours vary per building within a plausible range, so the model cannot memorise one look."""
    wall = _pick(rng, _WALL_COLORS, 10.0)
    colors = np.empty((len(PALETTE), 3), dtype=np.float32)
    colors[BACKGROUND] = _jitter(rng, (150, 185, 225), 8.0)
    colors[WALL] = wall
    colors[WINDOW] = _jitter(rng, (62, 76, 96), 8.0)
    colors[DOOR] = _pick(rng, _DOOR_COLORS, 8.0)
    colors[BALCONY] = _jitter(rng, (48, 48, 54), 6.0)
    colors[CORNICE] = 0.45 * wall + 0.55 * _jitter(rng, (236, 230, 214), 6.0)
    colors[PILLAR] = 0.6 * wall + 0.4 * _jitter(rng, (215, 205, 185), 8.0)
    colors[ROOF] = _pick(rng, _ROOF_COLORS, 8.0)
    colors[SHOP] = _jitter(rng, (42, 36, 32), 5.0)
    brick_height = max(2, round(size / _uniform(rng, 30, 45))) if rng.random() < 0.45 else 0
    return _Style(colors, _pick(rng, _FRAME_COLORS, 6.0), _pick(rng, _SIGN_COLORS, 15.0), brick_height)


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates shaped for broadcasting to (height, width)."""
    return np.arange(height, dtype=np.float32)[:, None], np.arange(width, dtype=np.float32)[None, :]


def _shade(color: np.ndarray, factor: np.ndarray, height: int, width: int) -> np.ndarray:
    return color * np.broadcast_to(factor, (height, width))[..., None]


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Low-frequency noise (bilinear upsampled random grid) for plaster stains and clouds."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR))


def _outline(image: np.ndarray, color: np.ndarray) -> None:
    """Paint a one-pixel frame in place where the block is big enough for the frame not to dominate it."""
    if image.shape[0] >= 8 and image.shape[1] >= 8:
        image[[0, -1], :] = color
        image[:, [0, -1]] = color


def _texture_sky(rng: np.random.Generator, height: int, width: int, style: _Style) -> np.ndarray:
    y, _ = _grid(height, width)
    toward_white = 0.45 * y / height + 0.06 * _smooth_noise(rng, height, width, 5)
    base = style.colors[BACKGROUND]
    return base + (255.0 - base) * np.clip(toward_white, 0, 1)[..., None]


def _texture_wall(rng: np.random.Generator, height: int, width: int, style: _Style) -> np.ndarray:
    stains = 1.0 + 0.06 * _smooth_noise(rng, height, width, 7)
    if not style.brick_height:
        return _shade(style.colors[WALL], stains, height, width)
    course = style.brick_height
    y, x = _grid(height, width)
    row = (y // course).astype(np.int64)
    shifted = x + (row % 2) * course * 1.25
    column = (shifted // (course * 2.5)).astype(np.int64)
    tones = 1.0 + 0.07 * rng.standard_normal((height // course + 1, width // (course * 2) + 2))
    mortar = (y % course == 0) | (shifted % (course * 2.5) < 1)
    factor = np.where(mortar, 1.25, tones[row, column] * stains)
    return _shade(style.colors[WALL], factor, height, width)


def _texture_window(rng: np.random.Generator, height: int, width: int, style: _Style) -> np.ndarray:
    """Glass: sky reflected at the top fading down, a diagonal glare, frame, mullion and a recess shadow."""
    y, x = _grid(height, width)
    glare_pos = (x / width + 0.6 * y / height + _uniform(rng, 0, 1)) % 1.0
    factor = 1.35 - 0.55 * y / height + 0.45 * np.exp(-(((glare_pos - 0.5) / 0.09) ** 2))
    image = _shade(style.colors[WINDOW], factor, height, width)
    _outline(image, style.frame)
    if width >= 10:
        image[:, width // 2] = style.frame
    if height >= 12:
        image[height // 3, :] = style.frame
    if height >= 8:
        image[1, 1:-1] *= 0.55
    return image


def _texture_door(rng: np.random.Generator, height: int, width: int, style: _Style) -> np.ndarray:
    """Wood: vertical grain stripes with a darker frame."""
    _, x = _grid(height, width)
    grain = np.sin(2 * np.pi * x / _uniform(rng, 2.5, 5.0)) * 0.08 + 0.06 * rng.standard_normal((1, width))
    image = _shade(style.colors[DOOR], 1.0 + grain, height, width)
    _outline(image, style.colors[DOOR] * 0.55)
    return image


def _texture_balcony(rng: np.random.Generator, height: int, width: int, style: _Style) -> np.ndarray:
    """Railing: bright metal bars and top rail in front of a dark recess."""
    y, x = _grid(height, width)
    period = max(2, round(_uniform(rng, 2.5, 4.0)))
    bars = (x % period == 0) | (y < max(1, height // 5)) | (y == height - 1)
    return _shade(style.colors[BALCONY], np.where(bars, 2.2, 0.7), height, width)


def _texture_cornice(rng: np.random.Generator, height: int, width: int, style: _Style) -> np.ndarray:
    """Stone moulding: lit from above, so bright on top and darker underneath."""
    y, _ = _grid(height, width)
    return _shade(style.colors[CORNICE], 1.15 - 0.35 * y / max(1, height - 1), height, width)


def _texture_pillar(rng: np.random.Generator, height: int, width: int, style: _Style) -> np.ndarray:
    """Rounded pilaster: horizontal cylinder shading with faint vertical fluting."""
    _, x = _grid(height, width)
    factor = 0.78 + 0.32 * np.sin(np.pi * (x + 0.5) / width) + 0.04 * np.cos(np.pi * x)
    return _shade(style.colors[PILLAR], factor, height, width)


def _texture_roof(rng: np.random.Generator, height: int, width: int, style: _Style) -> np.ndarray:
    """Tiles: rows that darken downwards with staggered vertical joints."""
    y, x = _grid(height, width)
    tile = max(2, round(height / _uniform(rng, 3, 5)))
    row = y // tile
    joint = (x + (row % 2) * tile) % (tile * 2) < 1
    factor = np.where(joint, 0.7, 1.15 - 0.4 * (y % tile) / tile)
    return _shade(style.colors[ROOF], factor, height, width)


def _texture_shop(rng: np.random.Generator, height: int, width: int, style: _Style) -> np.ndarray:
    """Shop front: a coloured sign band above dark glass with a warm interior glow and frames."""
    y, x = _grid(height, width)
    glow = np.array([255, 200, 120], dtype=np.float32) * (0.1 + 0.35 * (y / height))[..., None]
    image = style.colors[SHOP] + glow * np.ones((1, width, 1), dtype=np.float32)
    pane = max(3, round(width / rng.integers(2, 5)))
    image[:, (x[0] % pane == 0)] = style.frame
    image[: max(1, height // 6)] = style.sign
    _outline(image, style.frame)
    return image


_TEXTURES: dict[int, Callable[[np.random.Generator, int, int, _Style], np.ndarray]] = {
    BACKGROUND: _texture_sky,
    WALL: _texture_wall,
    WINDOW: _texture_window,
    DOOR: _texture_door,
    BALCONY: _texture_balcony,
    CORNICE: _texture_cornice,
    PILLAR: _texture_pillar,
    ROOF: _texture_roof,
    SHOP: _texture_shop,
}


def _paint_textures(rng: np.random.Generator, rects: list[_Rect], style: _Style, size: int) -> np.ndarray:
    photo = np.empty((size, size, 3), dtype=np.float32)
    for rect in rects:
        height, width = rect.bottom - rect.top, rect.right - rect.left
        photo[rect.area] = _TEXTURES[rect.cls](rng, height, width, style)
    return photo


def _cast_shadows(photo: np.ndarray, labels: np.ndarray, size: int) -> None:
    """Ledges and balconies stick out of the wall: darken the few rows just below them (in place)."""
    sticks_out = (labels == CORNICE) | (labels == BALCONY)
    below = np.zeros_like(sticks_out)
    for offset in range(1, _px(size / 80) + 1):
        below[offset:] |= sticks_out[:-offset]
    photo[below & ~sticks_out & (labels != BACKGROUND)] *= 0.68


def _light_and_noise(rng: np.random.Generator, photo: np.ndarray, size: int) -> np.ndarray:
    """Soft directional light plus per-pixel luminance noise, quantised to uint8 (reuses ``photo`` in place)."""
    y, x = _grid(size, size)
    light = 1.0 + _uniform(rng, -0.2, 0.2) * (x / size - 0.5) + _uniform(rng, -0.2, 0.2) * (y / size - 0.5)
    noise = rng.standard_normal((size, size, 1), dtype=np.float32) * _uniform(rng, 2.0, 5.0)
    photo *= light[..., None]
    photo += noise
    return np.clip(photo, 0, 255, out=photo).round(out=photo).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------
# Public API


def render_facade(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one random facade.

    Returns (labels HxW uint8 class indices into PALETTE, photo HxWx3 uint8). All randomness comes from
    ``rng``, so a generator seeded per image makes every sample reproducible on its own.
    """
    _check_size(size)
    rects = _layout(rng, size)
    labels = _paint_labels(rects, size)
    photo = _paint_textures(rng, rects, _draw_style(rng, size), size)
    _cast_shadows(photo, labels, size)
    return labels, _light_and_noise(rng, photo, size)


def colorize_labels(labels: np.ndarray) -> np.ndarray:
    """Class ids (HxW) -> exact palette colours (HxWx3 uint8), the A side of the pairs."""
    return np.take(_PALETTE_COLORS, labels, axis=0)


def labels_from_colors(image: np.ndarray) -> np.ndarray:
    """Palette-coloured image (HxWx3) -> class ids (HxW uint8) by nearest palette colour.

    Nearest rather than exact matching, so generated (imperfect) label maps can be scored too.
    """
    diff = image[..., None, :3].astype(np.int32) - _PALETTE_COLORS.astype(np.int32)
    return np.argmin((diff * diff).sum(axis=-1), axis=-1).astype(np.uint8)


def generate_facades(
    out_dir: str | Path, *, train: int = 400, val: int = 50, test: int = 50, size: int = 256, seed: int = 0
) -> Path:
    """Write the dataset as aligned A|B PNGs (labels | photo) in out_dir/{train,val,test} plus palette.json.

    Each image uses its own generator seeded from (seed, split, index), so files are byte-identical across
    runs and do not depend on how many other images are generated. Every file is written atomically, so an
    interrupted run never leaves a truncated image behind. Returns ``out_dir`` as a Path.
    """
    _check_size(size)
    counts = {"train": train, "val": val, "test": test}
    if any(count < 0 for count in counts.values()):
        raise ValueError(f"image counts must be >= 0, got {counts}")
    out = Path(out_dir)
    for split_id, split in enumerate(SPLITS):
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(counts[split]):
            labels, photo = render_facade(np.random.default_rng([seed, split_id, index]), size)
            pair = np.concatenate([colorize_labels(labels), photo], axis=1)
            _write_atomic(folder / f"{index:04d}.png", _png_bytes(pair))
    palette = {
        "classes": [{"name": c.name, "color": list(c.color)} for c in PALETTE],
        "size": size,
        "seed": seed,
        "counts": counts,
    }
    _write_atomic(out / "palette.json", (json.dumps(palette, indent=2) + "\n").encode())
    return out


def _check_size(size: int) -> None:
    if size < MIN_SIZE:
        raise ValueError(f"size must be >= {MIN_SIZE} so every facade element stays visible, got {size}")


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    save_pil(Image.fromarray(image), buffer)
    return buffer.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, then rename: readers see the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
