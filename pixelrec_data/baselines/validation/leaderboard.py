"""The leaderboard of a validation: one entry per suite run (metrics, notes, the commands that
rebuild it) and its text form for the terminal."""
from __future__ import annotations

import shlex
from pathlib import Path


def convergence(row) -> str:
    """'' for a run that converged (or does not train), else why it stopped before converging:
    early stopping ended it with its best validation in the first tenth of its epoch budget (at
    least the first 3 epochs: it never improved after a start that recurrent models, for one,
    spend at popularity level), or its best was the last epoch the budget allowed (still rising)."""
    epochs, patience = int(row.config.get("epochs", 0) or 0), int(row.config.get("stopping_step", 0) or 0)
    early = max(3, epochs // 10)
    if row.status != "ok" or epochs == 0 or row.epochs_run == 0 or not row.best_epoch:
        return ""
    if row.epochs_run >= epochs and row.best_epoch == row.epochs_run and epochs > 1:
        return (f"stopped before converging: validation still rising at epoch {row.epochs_run}, "
                f"the last of its budget (raise epochs)")
    if row.epochs_run < epochs and row.best_epoch <= early:
        return (f"stopped before converging: best epoch {row.best_epoch}, early stopping after "
                f"{row.epochs_run} of {epochs} epochs (patience {patience}; raise stopping_step, "
                f"or change learning_rate or loss)")
    return ""


def reproduce(row, release: Path, device: str) -> list[str]:
    """The commands that rebuild a run: its image inputs first (as validate builds them), then
    the training."""
    from .bands import image_encoder
    kind, encoder, _ = image_encoder(row.config, row.entry_weights)
    steps = []
    if kind == "vinet":
        layer = str(row.config["features"]).rpartition("_")[2]
        args = ["pixelrec", "extract-features", "--release", str(release), "--encoder", encoder,
                "--layer", layer, "--device", device]
        steps.append(shlex.join(args + (["--encoder-weights", str(row.entry_weights)]
                                        if row.entry_weights else [])))
    elif kind == "pixelnet":
        steps.append(shlex.join(["pixelrec", "prepare-images", "--release", str(release), "--size",
                                 str(row.config["image_size"]), "--mode",
                                 str(row.config.get("image_mode", "squash"))]))
    return steps + [row.command(release, device)]


def rows(runs: list, release: Path, device: str) -> list[dict]:
    from .bands import image_encoder
    out = []
    for r in runs:
        kind, encoder, weighted = image_encoder(r.config, r.entry_weights)
        out.append({"name": r.name, "model": r.model, "role": r.role, "status": r.status,
                    "reason": r.reason, "best_epoch": r.best_epoch, "epochs_run": r.epochs_run,
                    "test": r.test, "validation": r.validation, "run_folder": r.run_folder,
                    "command": r.command(release, device), "steps": reproduce(r, release, device),
                    "groups": r.groups, "convergence": convergence(r),
                    "random_encoder": encoder if kind and not weighted else ""})
    return out


def text(results: dict) -> str:
    lines = [f"{'model':<18} {'R@5':>7} {'R@10':>7} {'N@5':>7} {'N@10':>7}  status"]
    for row in results["leaderboard"]:
        t = row["test"]
        if row["status"] == "ok":
            lines.append(f"{row['name']:<18} {t['recall@5']:7.4f} {t['recall@10']:7.4f} "
                         f"{t['ndcg@5']:7.4f} {t['ndcg@10']:7.4f}  ok")
        else:
            lines.append(f"{row['name']:<18} {'-':>7} {'-':>7} {'-':>7} {'-':>7}  {row['status']}: "
                         f"{row['reason']}")
    for row in results["leaderboard"]:
        if row.get("random_encoder") and row["status"] == "ok":
            lines.append(f"note    {row['name']}: encoder {row['random_encoder']} randomly initialised")
        if row.get("convergence"):
            lines.append(f"note    {row['name']}: {row['convergence']}")
    for check in results["checks"]:
        status = "not run" if check["status"] == "skipped" else check["status"]
        lines.append(f"check {status:<7} {check.get('name', check['kind'])}: {check['detail']}")
    for band in results.get("bands", []):
        lines.append(f"paper {band['status']:<7} {band['detail']}")
    return "\n".join(lines)
