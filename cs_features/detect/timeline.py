"""Per-embryo timelines of a detection run: the autoencoder score and the frame score over frame index.

Two panels share the frame-index axis: the autoencoder score with the gate threshold, and the frame score
(the highest p of the frame's reported boxes) with the decision threshold ``positive_p``. Frames whose
localizer was skipped by the gate are drawn as open circles at 0. When labels exist, frames with strings
in the ground truth are shaded green and unlabelled frames grey.
"""

from __future__ import annotations

from pathlib import Path

TRUTH_CS = "#2ca02c"
UNLABELLED = "#999999"
TITLE_INCHES_PER_CHAR = 0.075  # at fontsize 10


def plot_timeline(embryo: str, frames: list, ae_threshold: float, positive_p: float, path: Path,
                  labelled_run: bool = False) -> Path:
    """Write one embryo's timeline PNG; ``frames`` are its read detections in frame-index order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    x = [d.frame_index for d in frames]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(max(8.0, min(18.0, 0.25 * len(frames) + 6)), 4.8))
    try:
        for axis in (top, bottom):
            _shade_truth(axis, frames, labelled_run)
        top.plot(x, [d.ae_score for d in frames], "o-", color="#1f77b4", ms=4, lw=1, label="autoencoder score")
        top.axhline(ae_threshold, color="#1f77b4", ls="--", lw=1, label=f"gate threshold {ae_threshold:.4f}")
        top.set_ylim(0, 1.15 * max(ae_threshold, *(d.ae_score for d in frames)))
        top.set_ylabel("AE score")
        ran = [d for d in frames if d.localized]
        skipped = [d for d in frames if not d.localized]
        bottom.plot(x, [d.frame_score for d in frames], "-", color="#d62728", lw=1)
        if ran:
            bottom.plot([d.frame_index for d in ran], [d.frame_score for d in ran], "o", color="#d62728", ms=4,
                        label="frame score (best box p)")
        if skipped:
            bottom.plot([d.frame_index for d in skipped], [0.0] * len(skipped), "o", mfc="none", color="#d62728",
                        ms=4, label="localizer skipped (score 0)")
        bottom.axhline(positive_p, color="#d62728", ls="--", lw=1, label=f"decision p >= {positive_p:.3g}")
        bottom.set_ylim(-0.05, 1.05)
        bottom.set_ylabel("best box p")
        bottom.set_xlabel("frame index")
        bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
        width = fig.get_figwidth()
        title = _title(embryo, frames, labelled_run)
        if len(title) * TITLE_INCHES_PER_CHAR > width - 0.3:  # long embryo ids (EmbryoScope): two lines
            title = title.replace("; truth: ", "\ntruth: ")
        fig.suptitle(title, x=0.15 / width, ha="left", fontsize=10)
        for axis in (top, bottom):
            axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
        top_margin = (0.62 if "\n" in title else 0.42) / fig.get_figheight()
        fig.subplots_adjust(left=0.75 / width, right=1 - 1.85 / width, top=1 - top_margin, bottom=0.11,
                            hspace=0.08)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path


def _shade_truth(axis, frames: list, labelled_run: bool) -> None:
    if not labelled_run:
        return
    shown = set()
    indices = sorted({d.frame_index for d in frames})
    half = min((b - a for a, b in zip(indices, indices[1:])), default=1) / 2  # frames every k indices: k wide
    for d in frames:
        if d.truth is None or d.truth:
            kind = "truth: CS frame" if d.truth else "unlabelled"
            axis.axvspan(d.frame_index - half, d.frame_index + half, color=TRUTH_CS if d.truth else UNLABELLED,
                         alpha=0.2, lw=0, label=None if kind in shown else kind)
            shown.add(kind)


def _title(embryo: str, frames: list, labelled_run: bool) -> str:
    detected = [d.frame_index for d in frames if d.cs_positive]
    title = f"embryo {embryo}: detected " + (f"CS in {len(detected)} of {len(frames)} frames "
                                              f"({_span(detected)})" if detected else "no CS")
    if labelled_run:
        labelled = [d for d in frames if d.truth is not None]
        truth_cs = [d.frame_index for d in labelled if d.truth]
        title += "; truth: " + ("unknown (no labels)" if not labelled
                                else f"CS in {len(truth_cs)} of {len(labelled)} labelled" if truth_cs else "no CS")
    return title


def _span(indices: list[int]) -> str:
    return f"frame {indices[0]}" if indices[0] == indices[-1] else f"frames {indices[0]}-{indices[-1]}"
