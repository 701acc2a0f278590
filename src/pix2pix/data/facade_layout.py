"""The facade's layout: the label classes, their colours, and a random facade as rectangles of classes.

The rectangles are painted in order, later ones covering earlier ones; the label map (the A half of the pairs) is
that painting in the palette's colours, and `pix2pix.data.facade_photo` renders the photo from the same rectangles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


@dataclass(frozen=True)
class Rect:
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

    def clipped(self, size: int) -> Rect:
        """The part inside the image (pillars and balconies at the building edge may stick out)."""
        top, left = max(self.top, 0), max(self.left, 0)
        return Rect(self.cls, top, left, max(top, min(self.bottom, size)), max(left, min(self.right, size)))


def uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A Python float: with float32 arrays it keeps them float32, where a NumPy float64 would widen them."""
    return float(rng.uniform(low, high))


def px(value: float) -> int:
    """Round a length to whole pixels, never below one, so small images keep every element visible."""
    return max(1, round(value))


def _floor_bounds(rng: np.random.Generator, top: int, bottom: int) -> list[tuple[int, int]]:
    """Split the facade body into floors, top floor first; the ground floor is a bit taller, as in reality."""
    floors = int(min(rng.integers(3, 7), max(2, (bottom - top) // 8)))
    weights = np.ones(floors)
    weights[-1] = uniform(rng, 1.1, 1.4)
    edges = np.round(top + (bottom - top) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()]))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _column_bounds(rng: np.random.Generator, left: int, right: int) -> list[tuple[float, float]]:
    """Split the facade width into equal window bays (real facades sit on a regular grid)."""
    columns = int(min(rng.integers(2, 7), max(2, (right - left) // 7)))
    edges = np.linspace(left, right, columns + 1)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))


def _centered(cls: int, top: int, bottom: int, bay: tuple[float, float], width: int) -> Rect:
    center = (bay[0] + bay[1]) / 2
    left = round(center - width / 2)
    return Rect(cls, top, left, bottom, left + width)


def _pillars(
    rng: np.random.Generator, bays: list[tuple[float, float]], width: int, top: int, bottom: int
) -> list[Rect]:
    """Pilasters at the building edges and, on some buildings, between every bay."""
    edges = [bays[0][0], bays[-1][1]]
    if rng.random() < 0.5:
        edges += [b[0] for b in bays[1:]]
    return [Rect(PILLAR, top, round(x - width / 2), bottom, round(x - width / 2) + width) for x in edges]


def _balconies(rng: np.random.Generator, windows: list[Rect], floor_height: int, left: int, right: int) -> list[Rect]:
    """A railing in front of the lower part of a floor's windows: one per window or one along the floor."""
    height = px(floor_height * uniform(rng, 0.18, 0.28))
    overhang = px((windows[0].right - windows[0].left) * 0.12)
    bottom = windows[0].bottom + px(floor_height * 0.05)
    if rng.random() < 0.3:
        return [Rect(BALCONY, bottom - height, left, bottom, right)]
    return [Rect(BALCONY, bottom - height, w.left - overhang, bottom, w.right + overhang) for w in windows]


def _ground_floor(
    rng: np.random.Generator, size: int, floor_top: int, bays: list[tuple[float, float]], window_width: int
) -> list[Rect]:
    """Either a shop front with an entrance or a row of tall windows around the door."""
    pitch = bays[0][1] - bays[0][0]
    height = size - floor_top
    door_bay = int(rng.integers(len(bays)))
    door_width = min(px(pitch * uniform(rng, 0.45, 0.7)), px(pitch - 2))
    door_top = size - px(height * uniform(rng, 0.6, 0.85))
    door = _centered(DOOR, door_top, size, bays[door_bay], door_width)
    if rng.random() < 0.4:
        margin = round(pitch * 0.1)
        shop_top = floor_top + px(height * uniform(rng, 0.1, 0.25))
        shop = Rect(SHOP, shop_top, round(bays[0][0]) + margin, size, round(bays[-1][1]) - margin)
        return [shop, door]
    win_top, win_bottom = floor_top + px(height * 0.2), size - px(height * 0.15)
    windows = [_centered(WINDOW, win_top, win_bottom, bay, window_width) for i, bay in enumerate(bays) if i != door_bay]
    return [*windows, door]


def layout(rng: np.random.Generator, size: int) -> list[Rect]:
    """Draw a random facade as rectangles in paint order: sky, wall, roof, pillars, ledges, openings."""
    left = round(size * uniform(rng, 0.0, 0.08))
    right = size - round(size * uniform(rng, 0.0, 0.08))
    roof_top = px(size * uniform(rng, 0.03, 0.14))
    body_top = roof_top + (px(size * uniform(rng, 0.04, 0.09)) if rng.random() < 0.75 else 0)
    ledge = px(size * uniform(rng, 0.01, 0.022))
    floors = _floor_bounds(rng, body_top, size)
    bays = _column_bounds(rng, left, right)
    pitch = bays[0][1] - bays[0][0]
    upper_height = floors[0][1] - floors[0][0]
    window_width = px(pitch * uniform(rng, 0.35, 0.6))
    window_height = px((upper_height - ledge) * uniform(rng, 0.45, 0.7))
    window_offset = uniform(rng, 0.3, 0.6)
    balcony_rate = float(rng.choice([0.0, 0.35, 0.7]))

    rects = [Rect(BACKGROUND, 0, 0, size, size), Rect(WALL, body_top, left, size, right)]
    if body_top > roof_top:
        rects.append(Rect(ROOF, roof_top, left, body_top, right))
    pillar_width = round(min(pitch * uniform(rng, 0.08, 0.14), (pitch - window_width) / 2 - 1))
    if pillar_width >= 1 and rng.random() < 0.5:
        rects += _pillars(rng, bays, pillar_width, body_top, size)
    rects += [Rect(CORNICE, top, left, top + ledge, right) for top, _ in floors]
    for top, bottom in floors[:-1]:
        win_top = top + ledge + round((bottom - top - ledge - window_height) * window_offset)
        windows = [_centered(WINDOW, win_top, win_top + window_height, bay, window_width) for bay in bays]
        rects += windows
        if rng.random() < balcony_rate:
            rects += _balconies(rng, windows, bottom - top, left, right)
    rects += _ground_floor(rng, size, floors[-1][0] + ledge, bays, window_width)
    return [clipped for rect in rects if (clipped := rect.clipped(size)).area_px > 0]


def paint_labels(rects: list[Rect], size: int) -> np.ndarray:
    """Class ids (HxW uint8) of the rectangles painted in order, as the photo is."""
    labels = np.empty((size, size), dtype=np.uint8)
    for rect in rects:
        labels[rect.area] = rect.cls
    return labels


def colorize_labels(labels: np.ndarray) -> np.ndarray:
    """Class ids (HxW) -> exact palette colours (HxWx3 uint8), the A side of the pairs."""
    return np.take(_PALETTE_COLORS, labels, axis=0)


def labels_from_colors(image: np.ndarray) -> np.ndarray:
    """Palette-coloured image (HxWx3) -> class ids (HxW uint8) by nearest palette colour.

    Nearest rather than exact matching, so generated (imperfect) label maps can be scored too.
    """
    diff = image[..., None, :3].astype(np.int32) - _PALETTE_COLORS.astype(np.int32)
    return np.argmin((diff * diff).sum(axis=-1), axis=-1).astype(np.uint8)
