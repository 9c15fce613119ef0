"""Evaluation results as JSON (every metric + provenance) and as a Markdown table, written atomically."""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .metrics import Disentanglement
from .retrieval import RECALL_KS, RetrievalResult
from .segmentation import SegmentationResult

__all__ = ["markdown", "to_json", "write_atomically"]


def _disentanglement(d: Disentanglement | None) -> dict[str, Any] | None:
    return None if d is None else asdict(d)


def _segmentation_json(r: SegmentationResult) -> dict[str, Any]:
    sets = r.sets.values()
    return {
        "task": "segmentation",
        "dataset": str(r.root),
        "metrics": r.metrics,
        "per_class": {s.prompts: {str(c.class_id): asdict(c) for c in s.classes} for s in sets},
        "norm_range": {s.prompts: {k: list(v) for k, v in s.norm_range.items()} for s in sets},
        "disentanglement": _disentanglement(r.disentanglement),
        "items": {
            s.prompts: [
                {
                    **asdict(i),
                    "image": i.image.name,
                    "label": i.label.name,
                    "audio": i.audio.name,
                    "window": i.window and list(i.window),
                }
                for i in s.items
            ]
            for s in sets
        },
    }


def _retrieval_json(r: RetrievalResult) -> dict[str, Any]:
    return {
        "task": "retrieval",
        "dataset": str(r.pairs_csv),
        "metrics": r.metrics,
        "sets": {
            name: {
                "n_pairs": len(s.pairs),
                "pair_ids": [p.pair_id for p in s.pairs],
                "recalls": s.recalls,
                "scores": s.scores.tolist(),  # [audio][image], heads summed
                "scores_per_head": s.scores_per_head.tolist(),  # [audio][image][head]
            }
            for name, s in r.sets.items()
        },
        "disentanglement": _disentanglement(r.disentanglement),
    }


def to_json(result: SegmentationResult | RetrievalResult) -> dict[str, Any]:
    """Everything a result holds that a reader needs, JSON-ready (undefined values are ``null``)."""
    body = _segmentation_json(result) if isinstance(result, SegmentationResult) else _retrieval_json(result)
    prov = result.provenance
    return {**body, "notes": list(result.notes), "provenance": None if prov is None else prov.to_dict()}


def _num(v: float | None, digits: int = 4) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _segmentation_md(r: SegmentationResult) -> str:
    parts = []
    for s in r.sets.values():
        kinds = ["basic", "advanced"] if "advanced_ap" in s.metrics else ["basic"]
        header = ["class", "id", "items", *[f"{k} {m}" for k in kinds for m in ("AP", "IoU")]]
        rows = [
            [c.class_name or "-", str(c.class_id), str(c.n_items)]
            + [_num(getattr(c, f"{k}_{m}")) for k in kinds for m in ("ap", "iou")]
            for c in s.classes
        ]
        rows.append(
            ["**mean**", "", str(len(s.items))]
            + [f"**{_num(s.metrics[f'{k}_{m}'])}**" for k in kinds for m in ("ap", "iou")]
        )
        parts.append(f"### {s.prompts}-prompted segmentation\n\n" + _table(header, rows))
    if r.disentanglement is not None:
        d = r.disentanglement
        parts.append(f"Head disentanglement (prompted sets): AP {_num(d.ap_dis)}, activation {_num(d.act_dis)}")
    return "\n\n".join(parts)


def _retrieval_md(r: RetrievalResult) -> str:
    header = ["set", "pairs", *[f"{d}_r{k}" for d in "AI" for k in RECALL_KS]]
    rows = [
        [name, str(len(s.pairs))] + [_num(s.recalls[f"{d}_r{k}"]) for d in "AI" for k in RECALL_KS]
        for name, s in r.sets.items()
    ]
    text = "### Retrieval (A: image query, audio retrieved; I: audio query, image retrieved)\n\n" + _table(header, rows)
    if r.disentanglement is not None:
        d = r.disentanglement
        text += f"\n\nHead disentanglement: AP {_num(d.ap_dis)}, activation {_num(d.act_dis)}"
    return text


def markdown(result: SegmentationResult | RetrievalResult) -> str:
    """The headline numbers as Markdown tables (per class and mean, or per set), plus notes if any."""
    text = _segmentation_md(result) if isinstance(result, SegmentationResult) else _retrieval_md(result)
    if result.notes:
        text += "\n\nNotes:\n" + "\n".join(f"- {n}" for n in result.notes)
    return text


def write_atomically(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place: never a half-written file."""
    out = Path(path)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
