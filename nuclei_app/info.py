"""``python -m nuclei_app info``: which model a source resolves to, for people and for machines."""
from __future__ import annotations

from .model import NucleiModel
from .sources import describe
from .wording import plural


def model_record(model: NucleiModel) -> dict:
    """Everything ``info --json`` prints: where the model is from and what it scored."""
    training = model.metadata.get("training", {})
    return {"model": describe(model), "source": model.source, "revision": model.revision,
            "folder": str(model.folder), "digest": model.digest(), "code_version": training.get("code_version"),
            "command": training.get("command"), "fine_tuned_from": training.get("fine_tuned_from"),
            "diameter_px": model.diameter,
            "postprocess": model.metadata.get("postprocess"), "metrics": model.validation_metrics,
            # A script must see that the source it asked for was not the one used (as stderr tells a person).
            "fallback_from": model.fallback_from, "notice": model.notice}


def model_summary(model: NucleiModel) -> str:
    """A few aligned lines a person reads at a glance: three decimals, units, the commit."""
    training = model.metadata.get("training", {})
    post = model.metadata.get("postprocess", {})
    # The digest is what summary.csv's settings column names, so a table can be traced back.
    lines = [("Model", describe(model)), ("Folder", str(model.folder)), ("Digest", model.digest())]
    if training:
        lines.append(("Trained by", f"{training.get('command', '?')} · code {training.get('code_version', '?')}"))
        base = training.get("fine_tuned_from")
        if isinstance(base, dict):   # a Hub folder's nuclei.json is not to be trusted to hold what it should
            commit = f", commit {base.get('revision')}" if base.get("revision") else ""
            lines.append(("Fine-tuned from", f"{base.get('source', '?')} (digest {base.get('digest', '?')}{commit})"))
        if training.get("fit_minutes"):
            lines.append(("Training", f"{_count(training.get('epochs'), 'epoch')}, {training['fit_minutes']:.1f} min on "
                                      f"{training.get('machine', 'an unrecorded machine')}"))
    lines.append(("Nucleus scale", f"{model.diameter:g} px diameter (images are rescaled to it)"
                  if model.diameter else "the image's own (no scale.diameter recorded)"))
    if post:
        lines.append(("Post-processing", f"threshold {post.get('threshold')}, marker {post.get('marker_threshold')}, "
                                         f"min size {post.get('min_size')} px" + (" at that scale" if model.diameter else "")))
    lines += _metric_lines(model.validation_metrics or {})
    caveat = model.scores_caveat
    if caveat:
        lines.append(("", f"({caveat})"))
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label:<{width}}  {text}" for label, text in lines)


def _metric_lines(metrics: dict) -> list[tuple[str, str]]:
    validation = metrics.get("validation", {})
    if "all" not in validation:
        return [("Validation", "no metrics recorded")]
    overall = validation["all"]
    lines = [("Validation", f"mean AP {overall['mean_ap']:.3f}, AP@0.5 {overall['ap50']:.3f}, "
                            f"Dice {overall['dice']:.3f} ({_count(overall.get('images'), 'image')})")]
    kinds = [f"{kind} {row['mean_ap']:.3f} ({row.get('images', '?')})" for kind, row in validation.items() if kind != "all"]
    if kinds:
        lines.append(("  by kind", ", ".join(kinds) + "  [mean AP (images)]"))
    shift = metrics.get("shift", {})
    if shift:
        restained = "" if set(shift) <= {"x0.5", "x2", "x3"} else ", re-stained"   # light images only
        lines.append(("Shift", ", ".join(f"{name} {table['all']['mean_ap']:.3f}" for name, table in shift.items())
                      + f"  [mean AP: rescaled x0.5/x2/x3{restained}]"))
    return lines


def _count(number, noun: str) -> str:
    return plural(number, noun, noun + "s") if number is not None else f"? {noun}s"
