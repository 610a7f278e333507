"""The files a heads bench leaves for people: ``heads.md`` (a table), ``heads.json``, ``pr.png``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

# (key in the metrics, column title, format); the order is the table's
COLUMNS = (
    ("average_precision", "AP", "{:.3f}"),
    ("auroc", "AUROC", "{:.3f}"),
    ("iou_mae", "IoU MAE", "{:.3f}"),
    ("hit@0.25", "hit@0.25", "{:.3f}"),
    ("hit@0.5", "hit@0.5", "{:.3f}"),
    ("ap25", "AP25", "{:.3f}"),
    ("ap50", "AP50", "{:.3f}"),
    ("train_seconds", "train s", "{:.1f}"),
    ("infer_rows_per_s", "infer rows/s", "{:,.0f}"),
    ("model_bytes", "size", None),
)


def summarise_runs(runs: list[dict]) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "std"}}`` over seeds (population std; 0 for one seed; NaNs ignored)."""
    out = {}
    for key in runs[0]:
        if key == "seed":
            continue
        values = np.asarray([run[key] for run in runs], np.float64)
        finite = values[np.isfinite(values)]
        out[key] = {"mean": float(finite.mean()) if finite.size else float("nan"),
                    "std": float(finite.std()) if finite.size else float("nan")}
    return out


def _bytes(value: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(value)


def _cell(summary: dict, key: str, fmt: str | None, seeds: int) -> str:
    stats = summary.get(key)
    if stats is None or not math.isfinite(stats["mean"]):
        return "n/a"
    if fmt is None:
        return _bytes(stats["mean"])
    text = fmt.format(stats["mean"])
    return f"{text} ± {fmt.format(stats['std'])}" if seeds > 1 and key not in ("infer_rows_per_s",) else text


def markdown_report(result: dict) -> str:
    """The bench as a Markdown page: settings, data, proposal recall and one row per head."""
    seeds = int(result["config"]["seeds"])
    settings = result["config"]["settings"]
    rows, recall = result["rows"], result["proposal_recall"]
    lines = [
        f"# Region heads on `{result['store']}` (tag `{result['tag']}`)",
        "",
        f"Encoder `{result['encoder']}` (dim {result['encoder_info'].get('dim')}), proposal sources "
        f"{', '.join(result['config'].get('sources') or []) or 'all'}, {seeds} seed(s): "
        "mean ± std over seeds. Test split throughout.",
        "",
        "- labelled proposals: " + ", ".join(f"{s} {rows[s]['rows']} ({rows[s]['positives']} positive)"
                                               for s in ("train", "val", "test") if s in rows),
        f"- test frames: {rows['test_frames']} ({rows['test_cs_frames']} with strings), "
        f"{rows['test_all_proposals']} proposals ({recall['proposals_per_frame']:.1f} per frame)",
        f"- proposal recall of the {recall['strings']} test strings (bounds the hit rate): "
        + ", ".join(f"IoU>={k.split('@')[1]}: {v:.3f}" for k, v in recall.items() if k.startswith("recall@")),
        f"- detection: boxes ranked by {_ranking(settings)}, NMS at IoU {settings['nms_iou']}{_inside(settings)}, "
        "at most "
        f"{settings['max_detections']} boxes per frame, COCO 101-point AP over all test frames; hit@t: best box "
        "of a string frame has IoU >= t with a string",
        "",
        "| head | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for name, head in result["heads"].items():
        cells = [_cell(head["summary"], key, fmt, seeds) for key, _, fmt in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    best = best_head(result)
    if best:
        lines += ["", f"Best frame-level hit@0.25: **{best[0]}** ({best[1]:.3f})."]
    return "\n".join(lines) + "\n"


def _inside(settings: dict) -> str:
    inside = settings.get("nms_inside")  # benches written before it had none
    return "" if inside is None else f" (a box {inside:.0%} inside a kept one dropped too)"


def _ranking(settings: dict) -> str:
    """How the bench ranked boxes (reports written before a prior existed ranked by p x IoU)."""
    priors = [name for name in ("attachment", "transience") if (settings.get(name) or {}).get("enabled")]
    region = "p x IoU"
    if (settings.get("framing") or {}).get("enabled"):
        region += " (read with the string map where the store proposes with the 'strings' source)"
    return " x ".join([region, *(f"the {name} prior" for name in priors)])


def best_head(result: dict) -> tuple[str, float] | None:
    """``(name, hit@0.25)`` of the bench's best head: the highest mean frame-level hit@0.25, ties broken by
    the higher mean region average precision; None when no head has a hit rate."""
    def mean(head: dict, name: str) -> float:
        value = head["summary"].get(name, {}).get("mean", float("nan"))
        return value if math.isfinite(value) else float("-inf")

    scored = [(name, mean(head, "hit@0.25"), mean(head, "average_precision")) for name, head in result["heads"].items()]
    scored = [item for item in scored if math.isfinite(item[1])]
    if not scored:
        return None
    name, hit, _ = max(scored, key=lambda item: (item[1], item[2]))
    return name, hit


def chosen_head(result: dict) -> str:
    """The head a bench recommends: :func:`best_head`, or the first head when none has a hit rate."""
    best = best_head(result)
    return best[0] if best else next(iter(result["heads"]))


def plot_pr_curves(result: dict, curves: dict, path: str | Path) -> Path:
    """Region-level precision-recall curves of every head (first seed) on one plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=120)
    for name, curve in curves.items():
        if len(curve["recall"]) == 0:
            continue
        ap = result["heads"][name]["summary"]["average_precision"]["mean"]
        ax.step(curve["recall"], curve["precision"], where="post", label=f"{name} (mean AP {ap:.3f})")
    test = result["rows"].get("test", {})
    if test.get("rows"):
        base = test["positives"] / test["rows"]
        ax.axhline(base, color="grey", linestyle=":", linewidth=1, label=f"chance ({base:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision",
           title=f"Test proposals, encoder {result['encoder']} (seed 0)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def write_bench_report(result: dict, curves: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write ``heads.md``, ``heads.json`` and ``pr.png`` into ``out_dir`` (created if missing)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "heads.md", "json": out / "heads.json", "pr": out / "pr.png"}
    paths["markdown"].write_text(markdown_report(result))
    paths["json"].write_text(json.dumps(strict_json(result), indent=2, sort_keys=True, default=_jsonable))
    plot_pr_curves(result, curves, paths["pr"])
    return paths


def strict_json(value):
    """``value`` with NaN/inf floats replaced by None, so the file is standard JSON."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _jsonable(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
