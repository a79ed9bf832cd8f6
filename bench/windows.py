"""Bench: training inputs at Pixel200K size (200K users, 96,282 items, ~3.97M rows).

    .venv/bin/python bench/windows.py [--release DIR] [--runs 3]

Without --release it writes a synthetic Pixel200K-shaped release to a temp folder first (not
timed). Each run is a fresh process that loads the release (parquet read + remap + sort), builds the
SEQ windows, AUGSEQ prefixes (materialised as a [P, 11] array), PAIR rows and the validation/test
eval inputs of every user; it reports wall seconds, process CPU seconds and peak RSS (VmHWM). Reference: the official
pandas + Python-loop path takes about 16 s and 1.27 GiB for SEQ on the same machine.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # toy data

CHILD = r"""
import json, sys, time
import numpy as np
from pixelrec_data.baselines.data import interactions as D
start = time.perf_counter()
data = D.load_interactions(sys.argv[1])
loaded = time.perf_counter()
rows, users, lengths = D.build_windows(data)
window, length = D.build_prefixes(lengths)
prefixes = D.prefix_rows(rows, lengths, window, length)
pair_users, pair_items = D.build_pairs(data)
all_users = np.arange(1, data.n_users + 1)
valid_in = D.eval_histories(data, all_users, "validation")
test_in = D.eval_histories(data, all_users, "test")
done = time.perf_counter()
print(json.dumps({
    "seconds": done - start, "load_s": loaded - start, "build_s": done - loaded,
    # VmHWM is this process's own peak (ru_maxrss would carry the parent's over fork + exec)
    "peak_rss_mb": int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024,
    "cpu_s": time.process_time(),
    "users": data.n_users, "items": data.n_items, "train_rows": len(pair_items),
    "rows_total": len(pair_items) + 2 * data.n_users, "windows": len(rows),
    "full_windows": int((lengths == 11).sum()), "prefixes": len(prefixes)}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        release = args.release
        if release is None:
            import toy
            users, items = toy.pixel200k_like()
            release = toy.write_release_arrays(Path(tmp) / "pixel200k-like", users, items, 96_282)
        results = []
        for _ in range(args.runs):
            out = subprocess.run([sys.executable, "-c", CHILD, str(release)], check=True,
                                 capture_output=True, text=True, cwd=ROOT)
            results.append(json.loads(out.stdout))
    summary = {k: results[0][k] for k in ("users", "items", "train_rows", "rows_total", "windows",
                                          "full_windows", "prefixes")}
    summary["load_average_1m"] = round(os.getloadavg()[0], 2)
    for key in ("seconds", "cpu_s", "load_s", "build_s", "peak_rss_mb"):
        summary[f"{key}_runs"] = [round(r[key], 3) for r in results]
        summary[f"{key}_median"] = round(statistics.median(r[key] for r in results), 3)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
