"""contact_sheet.png: what the coreset looks like, for a person deciding whether to trust it.

One row per cluster (pseudo-label of a label-free run, class of a supervised one; the first
MAX_GROUPS) with kept samples spread over the cluster's range of scores (hardest on the left),
then, for comparison, the hardest and the easiest samples the selection dropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from coreset_lab.files import temp_path

PER_ROW = 8
MAX_GROUPS = 10
CELL = 64
GAP = 4
LABEL_WIDTH = 190
TITLE_HEIGHT = 24


def thumbnail(data, i: int) -> Image.Image | None:
    """Sample i of the train split as a CELL x CELL image (None: nothing to show)."""
    images = getattr(data.train_eval, "images", None)
    if images is not None:
        pixels = images[int(i)].cpu().numpy()  # uint8 [C, H, W]
        mode = "L" if pixels.shape[0] == 1 else "RGB"
        image = Image.fromarray(pixels[0] if mode == "L" else pixels.transpose(1, 2, 0), mode)
    elif data.train_files is not None:
        try:
            with Image.open(data.train_files[int(i)]) as im:
                image = im.convert("RGB")
        except OSError:
            return None
    else:
        return None
    small = max(image.size) < CELL  # blow small images up without blurring them
    return image.resize((CELL, CELL), Image.NEAREST if small else Image.BILINEAR)


def _spread(members: np.ndarray, scores: np.ndarray | None, k: int) -> np.ndarray:
    """Up to k of `members`, evenly spaced from the hardest to the easiest."""
    if scores is not None:
        members = members[np.argsort(-np.nan_to_num(scores[members], nan=-np.inf), kind="stable")]
    if members.size <= k:
        return members
    return members[np.linspace(0, members.size - 1, k).round().astype(int)]


def sheet_rows(coreset, scores, groups, n: int) -> list[tuple[str, np.ndarray]]:
    """(row label, sample indices) of every row of the sheet; `groups` is (what a group is
    called, [N] group of every sample) or None."""
    kept = np.zeros(n, dtype=bool)
    kept[coreset] = True
    rows = []
    if groups is None:
        rows.append((f"kept ({kept.sum()} of {n})", _spread(np.flatnonzero(kept), scores, PER_ROW)))
    else:
        name, groups = groups
        for g in np.unique(groups)[:MAX_GROUPS]:
            members = np.flatnonzero(kept & (groups == g))
            label = f"{name} {g}: {members.size}/{int((groups == g).sum())} kept"
            rows.append((label, _spread(members, scores, PER_ROW)))
    dropped = np.flatnonzero(~kept)
    if scores is not None and dropped.size:
        order = dropped[np.argsort(-np.nan_to_num(scores[dropped], nan=-np.inf), kind="stable")]
        rows.append(("dropped: hardest", order[:PER_ROW]))
        rows.append(("dropped: easiest", order[::-1][:PER_ROW]))
    return rows


def write_contact_sheet(path: Path, data, coreset, scores, groups, title: str) -> bool:
    """Draw the sheet; False (nothing written) when the samples cannot be shown."""
    rows = sheet_rows(np.asarray(coreset), scores, groups, len(data.train_eval))
    if thumbnail(data, 0) is None:
        return False
    width = LABEL_WIDTH + PER_ROW * (CELL + GAP)
    height = TITLE_HEIGHT + len(rows) * (CELL + GAP)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((GAP, GAP), title, fill="black")
    for r, (label, indices) in enumerate(rows):
        top = TITLE_HEIGHT + r * (CELL + GAP)
        draw.text((GAP, top + CELL // 2 - 6), label, fill="black")
        for c, i in enumerate(indices):
            image = thumbnail(data, int(i))
            if image is not None:
                sheet.paste(image, (LABEL_WIDTH + c * (CELL + GAP), top))
    tmp = temp_path(path, ".png")
    sheet.save(tmp)
    tmp.replace(path)
    return True
