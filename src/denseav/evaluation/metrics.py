"""The original's evaluation metrics as small pure functions over tensors.

* :func:`average_precision`: torchmetrics' ``binary_average_precision`` (= sklearn's
  ``average_precision_score``): every distinct score is a threshold, tied scores enter together.
* :func:`best_iou`: the original's "multi_iou": the best IoU over 20 evenly spaced thresholds between the
  smallest and the largest score (``score > threshold``).
* :func:`recall_at_k`: retrieval recall in both directions of an [audio, image] similarity matrix.
* :func:`disentanglement`: how well two heads separate word pairs from sound pairs (AP- and activation-based).

The pooled metrics of a class also come in a streamed form (:func:`pooled_metrics`) that sees its scores as
chunks, possibly several times, and never holds more than a given number of them: see that function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

__all__ = [
    "IOU_THRESHOLDS",
    "Disentanglement",
    "PooledMetrics",
    "average_precision",
    "best_iou",
    "disentanglement",
    "iou_thresholds",
    "pooled_metrics",
    "recall_at_k",
]

#: Thresholds the original's multi_iou tries between the smallest and the largest score.
IOU_THRESHOLDS = 20

#: A function that, each time it is called, streams the same pooled (scores float32 [n], labels bool [n]) chunks.
ScoreStream = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]


# ------------------------------------------------------------------------------------ average precision


def _ap_sum(scores: torch.Tensor, labels: torch.Tensor, tp0: int, fp0: int, positives: int) -> tuple[float, int, int]:
    """AP terms of one run of scores that are sorted in decreasing order and that no tie group straddles.

    ``tp0``/``fp0`` count the positives/negatives ranked above this run. Returns (sum of
    ``(R_n - R_{n-1}) * P_n`` over the run's thresholds, tp and fp after the run).
    """
    if scores.numel() == 0:
        return 0.0, tp0, fp0
    lab = labels.to(torch.int64)
    tp = tp0 + torch.cumsum(lab, 0)
    fp = fp0 + torch.cumsum(1 - lab, 0)
    # The last element of each group of equal scores is one threshold.
    ends = torch.ones_like(scores, dtype=torch.bool)
    ends[:-1] = scores[1:] != scores[:-1]
    tp_end, fp_end = tp[ends].double(), fp[ends].double()
    prev_tp = torch.cat([torch.tensor([float(tp0)], dtype=torch.float64), tp_end[:-1]])
    total = ((tp_end - prev_tp) / positives * tp_end / (tp_end + fp_end)).sum()
    return float(total), int(tp[-1]), int(fp[-1])


def average_precision(scores: torch.Tensor, labels: torch.Tensor) -> float | None:
    """AP of ``scores`` (any shape) against boolean ``labels``; ``None`` when there is no positive (undefined).

    Scores are not passed through a sigmoid (torchmetrics would do that only for values outside [0, 1]).
    """
    s = scores.reshape(-1)
    lab = labels.reshape(-1).to(torch.bool)
    positives = int(lab.sum())
    if positives == 0:
        return None
    s, order = torch.sort(s, descending=True, stable=True)
    return _ap_sum(s, lab[order], 0, 0, positives)[0]


# ----------------------------------------------------------------------------------------------- IoU


def iou_thresholds(lo: float | torch.Tensor, hi: float | torch.Tensor, steps: int = IOU_THRESHOLDS) -> torch.Tensor:
    """``torch.linspace(lo, hi, steps)`` in float32, as the original."""
    return torch.linspace(float(lo), float(hi), steps, dtype=torch.float32)


def _iou_counts(
    scores: torch.Tensor, labels: torch.Tensor, thresholds: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per threshold: |score > t AND label| and |score > t OR label| (int64 [steps])."""
    pred = scores.reshape(1, -1) > thresholds[:, None]
    lab = labels.reshape(1, -1).to(torch.bool)
    return (pred & lab).sum(1), (pred | lab).sum(1)


def _best_of(inter: torch.Tensor, union: torch.Tensor) -> float:
    # A threshold whose union is empty counts as IoU 0.
    iou = torch.where(
        union > 0, inter.double() / union.clamp_min(1).double(), torch.zeros_like(inter, dtype=torch.float64)
    )
    return float(iou.max())


def best_iou(scores: torch.Tensor, labels: torch.Tensor, steps: int = IOU_THRESHOLDS) -> float:
    """The best IoU of ``score > t`` against ``labels`` over ``steps`` thresholds from min to max score."""
    s = scores.reshape(-1)
    return _best_of(*_iou_counts(s, labels.reshape(-1), iou_thresholds(s.min(), s.max(), steps)))


# ---------------------------------------------------------------------------------- streamed, pooled


@dataclass(frozen=True)
class PooledMetrics:
    """AP and best IoU of all the scores of one class pooled together."""

    ap: float | None  # None: no positive pixel at all (AP is undefined)
    iou: float
    positives: int
    total: int


def _histogram_bins(s: torch.Tensor, lo: float, hi: float, bins: int) -> torch.Tensor:
    # Deterministic per value, so every pass puts a value in the same bin; equal values share a bin.
    scale = bins / (hi - lo) if hi > lo else 0.0
    return ((s.double() - lo) * scale).floor().clamp_(0, bins - 1).long()


def pooled_metrics(
    stream: ScoreStream, *, max_values: int = 1 << 24, bins: int = 1 << 16, steps: int = IOU_THRESHOLDS
) -> PooledMetrics:
    """Exact AP and best IoU over all chunks of ``stream``, holding at most about ``max_values`` scores.

    Pass 1 finds the min, max and counts (and keeps the chunks while they fit in ``max_values``: then the
    metrics come straight from them). Otherwise pass 2 counts, per IoU threshold, the intersection and union,
    and a histogram of ``bins`` equal-width bins over [min, max] with its totals; the AP then needs the scores
    in decreasing order, which further passes provide a run of consecutive bins at a time (as many as fit in
    ``max_values``; a single bin holding more is taken whole), sorted exactly and continued from the counts
    above it. Ties always share a bin, so the result equals :func:`average_precision` on the pooled scores.
    """
    lo, hi, total, positives = float("inf"), float("-inf"), 0, 0
    kept: list[tuple[torch.Tensor, torch.Tensor]] | None = []
    for s, lab in stream():
        s, lab = s.reshape(-1), lab.reshape(-1).to(torch.bool)
        if s.numel():
            lo, hi = min(lo, float(s.min())), max(hi, float(s.max()))
        total += s.numel()
        positives += int(lab.sum())
        if kept is not None:
            kept = [*kept, (s, lab)] if total <= max_values else None
    if total == 0:
        raise ValueError("pooled_metrics: the stream yielded no scores")
    if kept is not None:
        s, lab = torch.cat([k[0] for k in kept]), torch.cat([k[1] for k in kept])
        return PooledMetrics(average_precision(s, lab), best_iou(s, lab, steps), positives, total)

    thresholds = iou_thresholds(lo, hi, steps)
    inter = torch.zeros(steps, dtype=torch.int64)
    union = torch.zeros(steps, dtype=torch.int64)
    counts = torch.zeros(bins, dtype=torch.int64)
    for s, lab in stream():
        i, u = _iou_counts(s.reshape(-1), lab.reshape(-1), thresholds)
        inter += i
        union += u
        counts += torch.bincount(_histogram_bins(s.reshape(-1), lo, hi, bins), minlength=bins)
    ap = None if positives == 0 else _streamed_ap(stream, counts, lo, hi, positives, max_values)
    return PooledMetrics(ap, _best_of(inter, union), positives, total)


def _streamed_ap(
    stream: ScoreStream, counts: torch.Tensor, lo: float, hi: float, positives: int, max_values: int
) -> float:
    """AP from passes over runs of histogram bins, highest bins first (see :func:`pooled_metrics`)."""
    bins = counts.numel()
    ap, tp, fp = 0.0, 0, 0
    top = bins - 1
    while top >= 0:
        # Extend the run [bottom, top] downwards while it fits (always at least one bin).
        bottom, size = top, int(counts[top])
        while bottom > 0 and size + int(counts[bottom - 1]) <= max_values:
            bottom -= 1
            size += int(counts[bottom])
        if size:
            parts = []
            for s, lab in stream():
                s, lab = s.reshape(-1), lab.reshape(-1).to(torch.bool)
                b = _histogram_bins(s, lo, hi, bins)
                inside = (b >= bottom) & (b <= top)
                parts.append((s[inside], lab[inside]))
            run = torch.cat([p[0] for p in parts])
            run, order = torch.sort(run, descending=True, stable=True)
            part, tp, fp = _ap_sum(run, torch.cat([p[1] for p in parts])[order], tp, fp, positives)
            ap += part
        top = bottom - 1
    return ap


# ------------------------------------------------------------------------------------------ retrieval


def recall_at_k(sim: torch.Tensor, k: int) -> tuple[float, float]:
    """``(A_rK, I_rK)`` of a square [audio, image] similarity matrix whose pairs lie on the diagonal.

    A_rK: fraction of images whose own audio is among the k audios most similar to it (image query);
    I_rK: fraction of audios whose own image is among the k images most similar to it (audio query).
    A competitor that exactly ties the paired score ranks ahead of it (the original's ``topk`` breaks such ties
    arbitrarily; this is the conservative reading). Needs ``1 <= k <= n``.
    """
    n = sim.shape[0]
    if sim.ndim != 2 or sim.shape[1] != n:
        raise ValueError(f"recall_at_k needs a square similarity matrix, got shape {tuple(sim.shape)}")
    if not 1 <= k <= n:
        raise ValueError(f"recall@{k} needs at least {k} pairs, got {n}")
    paired = sim.diagonal()
    eye = torch.eye(n, dtype=torch.bool)
    # Rank of the pair among its column (audios for an image) / its row (images for an audio), 0 = first.
    rank_audio = ((sim >= paired[None, :]) & ~eye).sum(0)
    rank_image = ((sim >= paired[:, None]) & ~eye).sum(1)
    return float((rank_audio < k).double().mean()), float((rank_image < k).double().mean())


# ---------------------------------------------------------------------------------- disentanglement


@dataclass(frozen=True)
class Disentanglement:
    """The original's head-disentanglement scores; matrices are [head][set] with set 0 = words, 1 = sounds."""

    ap_dis: float
    act_dis: float
    ap_matrix: list[list[float]]
    act_matrix: list[list[float]]


def disentanglement(word_scores: torch.Tensor, sound_scores: torch.Tensor) -> Disentanglement:
    """From the paired per-head scores [n, 2] of word pairs and [m, 2] of sound pairs.

    Per head the stacked [n + m, 2] column is shifted to a minimum of 0 and divided by max(its maximum, 1e-4);
    ``AP[h][d]`` is the AP of head h's column for "row belongs to set d", ``act[h][d]`` is 1 - its mean over the
    rows of set d; each score is the better of the two head-to-set assignments, averaged over the two heads.
    """
    if word_scores.ndim != 2 or word_scores.shape[1] != 2 or sound_scores.ndim != 2 or sound_scores.shape[1] != 2:
        raise ValueError(
            "disentanglement needs per-head scores of a two-head model, shapes [n, 2] and [m, 2]; got "
            f"{tuple(word_scores.shape)} and {tuple(sound_scores.shape)}"
        )
    x = torch.cat([word_scores, sound_scores]).float()
    x = x - x.min(dim=0, keepdim=True).values
    x = x / x.max(dim=0, keepdim=True).values.clamp_min(1e-4)
    is_word = torch.arange(x.shape[0]) < word_scores.shape[0]
    members = (is_word, ~is_word)
    ap = [[average_precision(x[:, h], members[d]) or 0.0 for d in (0, 1)] for h in (0, 1)]
    act = [[float(1 - x[members[d], h].mean()) for d in (0, 1)] for h in (0, 1)]

    def best(m: list[list[float]]) -> float:
        return max((m[0][0] + m[1][1]) / 2, (m[0][1] + m[1][0]) / 2)

    return Disentanglement(best(ap), best(act), ap, act)
