"""The facade's photo (the B half of the pairs), rendered from its layout: per building, one set of materials;
per block, a texture of its class; over the whole image, shadows below what sticks out, light and noise.

Every class has its own colour, texture and shading, so the photo is almost a function of the labels plus noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pix2pix.data.facade_layout import (
    BACKGROUND,
    BALCONY,
    CORNICE,
    DOOR,
    PALETTE,
    PILLAR,
    ROOF,
    SHOP,
    WALL,
    WINDOW,
    Rect,
    px,
    uniform,
)

# Typical base colours (RGB) per class; each image draws one and jitters it, so buildings differ.
_WALL_COLORS = ((205, 190, 160), (170, 88, 62), (160, 160, 152), (212, 168, 92), (226, 220, 204), (188, 122, 110))
_DOOR_COLORS = ((105, 62, 35), (70, 45, 30), (45, 70, 60), (40, 55, 90))
_ROOF_COLORS = ((120, 62, 48), (72, 76, 88), (95, 90, 85))
_FRAME_COLORS = ((232, 230, 222), (60, 50, 42), (120, 120, 118))
_SIGN_COLORS = ((200, 40, 40), (40, 120, 60), (230, 190, 40), (30, 60, 140))


@dataclass(frozen=True)
class _Style:
    """Per-building appearance shared by all blocks of one image (like one real building's materials)."""

    colors: np.ndarray  # (classes, 3) float base colour of every class
    frame: np.ndarray  # window and shop frame colour
    sign: np.ndarray  # shop sign colour
    brick_height: int  # brick course height in pixels, 0 for smooth plaster


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
    brick_height = max(2, round(size / uniform(rng, 30, 45))) if rng.random() < 0.45 else 0
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
    glare_pos = (x / width + 0.6 * y / height + uniform(rng, 0, 1)) % 1.0
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
    grain = np.sin(2 * np.pi * x / uniform(rng, 2.5, 5.0)) * 0.08 + 0.06 * rng.standard_normal((1, width))
    image = _shade(style.colors[DOOR], 1.0 + grain, height, width)
    _outline(image, style.colors[DOOR] * 0.55)
    return image


def _texture_balcony(rng: np.random.Generator, height: int, width: int, style: _Style) -> np.ndarray:
    """Railing: bright metal bars and top rail in front of a dark recess."""
    y, x = _grid(height, width)
    period = max(2, round(uniform(rng, 2.5, 4.0)))
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
    tile = max(2, round(height / uniform(rng, 3, 5)))
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


def _paint_textures(rng: np.random.Generator, rects: list[Rect], style: _Style, size: int) -> np.ndarray:
    photo = np.empty((size, size, 3), dtype=np.float32)
    for rect in rects:
        height, width = rect.bottom - rect.top, rect.right - rect.left
        photo[rect.area] = _TEXTURES[rect.cls](rng, height, width, style)
    return photo


def _cast_shadows(photo: np.ndarray, labels: np.ndarray, size: int) -> None:
    """Ledges and balconies stick out of the wall: darken the few rows just below them (in place)."""
    sticks_out = (labels == CORNICE) | (labels == BALCONY)
    below = np.zeros_like(sticks_out)
    for offset in range(1, px(size / 80) + 1):
        below[offset:] |= sticks_out[:-offset]
    photo[below & ~sticks_out & (labels != BACKGROUND)] *= 0.68


def _light_and_noise(rng: np.random.Generator, photo: np.ndarray, size: int) -> np.ndarray:
    """Soft directional light plus per-pixel luminance noise, quantised to uint8 (reuses ``photo`` in place)."""
    y, x = _grid(size, size)
    light = 1.0 + uniform(rng, -0.2, 0.2) * (x / size - 0.5) + uniform(rng, -0.2, 0.2) * (y / size - 0.5)
    noise = rng.standard_normal((size, size, 1), dtype=np.float32) * uniform(rng, 2.0, 5.0)
    photo *= light[..., None]
    photo += noise
    return np.clip(photo, 0, 255, out=photo).round(out=photo).astype(np.uint8)


def render_photo(rng: np.random.Generator, rects: list[Rect], labels: np.ndarray, size: int) -> np.ndarray:
    """The photo (HxWx3 uint8) of a layout: the building's materials, a texture per block, then shadows, light
    and noise."""
    photo = _paint_textures(rng, rects, _draw_style(rng, size), size)
    _cast_shadows(photo, labels, size)
    return _light_and_noise(rng, photo, size)
