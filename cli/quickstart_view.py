"""What `csf quickstart` prints while the main job runs."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from cli.common import progress_bar

TITLES = {"synth": "1/6  synthetic data", "ingest": "2/6  ingest into the feature store",
          "autoencoder": "3/6  autoencoder filter: train and score", "heads": "4/6  region heads: bench",
          "detect": "5/6  detect on the test split", "similar": "6/6  similar regions"}
UNITS = {"synth": "embryos", "ingest": "frames", "autoencoder": "batches", "heads": "runs", "detect": "frames"}


class QuickstartView:
    """Opens a progress bar per stage and prints each stage's result."""

    def __init__(self, console) -> None:
        self.console = console
        self.stack = ExitStack()

    def progress(self, stage: str):
        self.stack.close()
        self.console.rule(TITLES[stage])
        if stage not in UNITS:
            return None
        return self.stack.enter_context(progress_bar(stage, unit=UNITS[stage]))

    def stage_done(self, stage: str, result: dict) -> None:
        from cli.detect_cmd import detect_summary_text
        from cli.ingest_cmd import ingest_summary_text
        from cli.synth_cmd import synth_summary_text

        self.stack.close()
        if stage == "folder":
            self.console.print(_folder_text(result))
        elif stage == "synth":
            self.console.print(synth_summary_text(result))
        elif stage == "ingest":
            self.console.print(ingest_summary_text(result))
        elif stage == "autoencoder":
            self.console.print(_ae_text(result))
        elif stage == "heads":
            self.console.print(Path(result["table"]).read_text())
            self.console.print(f"best head by frame hit@0.25: [bold]{result['best']}[/], saved to {result['model']}")
        elif stage == "detect":
            self.console.print(detect_summary_text(result))
        elif stage == "similar":
            self.console.rule(TITLES["similar"])
            self.console.print(_similar_text(result))

    def finish(self, out: Path, results: dict) -> None:
        self.console.rule("done: pictures to look at")
        self.console.print(_seconds_text(results["seconds"]))
        self.console.print(f"synthetic frames with their strings: {results['synth']['contact_sheet']}")
        self.console.print(f"detections, one picture per frame:   {results['detect']['files']['overlays']}/")
        self.console.print(
            f"precision-recall of the heads:       {Path(results['heads']['table']).with_name('pr.png')}"
        )
        if "contact_sheet" in results["similar"]:
            self.console.print(f"a string and its nearest regions:    {results['similar']['contact_sheet']}")
        self.console.print(f"feature store: {out / 'store'}  (try `csf store info --store {out / 'store'}`)")
        self.console.print(f"review the detections in your browser, labels back into the store: "
                           f"`csf review --store {out / 'store'} --detections {out / 'detect'}`")


def _seconds_text(seconds: dict) -> str:
    stages = ", ".join(f"{stage} {_duration(s)}" for stage, s in seconds.items() if stage != "total")
    return f"the main job took {_duration(seconds['total'])}: {stages}"


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:.1f} s"


def _folder_text(result: dict) -> str:
    folder = result["folder"]
    if result["state"] == "rebuilt":
        return (f"[yellow]--fresh: removed the earlier run in {folder} "
                f"({', '.join(result['removed'])}); rebuilding data, store and models[/]")
    if result["state"] == "same options":
        return (f"{folder} holds a run with the same options: running it again in place (the ingest adds "
                "nothing new; models are retrained)")
    return f"working folder: {folder}"


def _ae_text(result: dict) -> str:
    lines = [f"autoencoder saved to {result['model']}; scored {result['scored']['frames_scored']} frames "
             "into the store's error_maps table"]
    for split in ("val", "test"):
        m = result["metrics"].get(split, {})
        auroc = "undefined" if m.get("auroc") is None else f"{m['auroc']:.3f}"
        lines.append(f"  {split}: AUROC {auroc}, F1 {m.get('f1', 0):.3f} at threshold {m.get('threshold', 0):.4f}")
    embryo = result["metrics"].get("test_embryo") or {}
    if embryo.get("auroc") is not None:
        lines.append(f"  embryo level (test): AUROC {embryo['auroc']:.3f}, F1 {embryo.get('f1', 0):.3f}")
    return "\n".join(lines)


def _similar_text(result: dict) -> str:
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    vote = result.get("cs_vote")
    lines = [f"query: a validation string region; CS vote of its {len(result['neighbours'])} nearest training "
             f"regions: {vote:.2f}" if vote is not None else "query: a validation string region"]
    for n in result["neighbours"][:5]:
        label = {1: "CS", 0: "no CS", -1: "ignored"}.get(n["weak_label"], "?")
        lines.append(f"  d={n['distance']:.4f} {label:<7} {n.get('stem') or n['frame_id']} box {n['box']}")
    lines.append(f"contact sheet: {result['contact_sheet']}")
    return "\n".join(lines)
