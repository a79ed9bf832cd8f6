"""The PixelRec paper's published test figures (arXiv 2309.06789, SDM 2024), as data.

One place for them: `validate-baselines` sets its bands from them, the report prints them beside
ours, and the docs' table is rendered from them (tests/test_paper_bands.py keeps the two equal).

The tables are kept in the paper's own layout and units (percent: 0.490 means NDCG@10 = 0.00490)
so that each number can be checked against the paper by eye; `published()` turns them into
fractions, the unit of our metrics.json. Protocol behind every figure: leave-one-out by time,
window 10, full ranking over all items with the user's history masked, BPR with one uniform
negative, the tuned hyper-parameters of configs/.
"""
from __future__ import annotations

from dataclasses import dataclass

METRIC_ORDER = ("recall@5", "ndcg@5", "recall@10", "ndcg@10")  # the paper's column order

# Table 5: IDNet and ViNet on Pixel200K. Columns R@5 N@5 R@10 N@10.
TABLE_5 = """
Random     0.006 0.003 0.010 0.004
Pop        0.035 0.019 0.066 0.029
LightGCN   0.538 0.337 0.929 0.461
MF         0.558 0.344 1.013 0.490
DSSM       0.840 0.522 1.401 0.701
FM         0.816 0.506 1.357 0.679
SRGNN      0.953 0.602 1.597 0.808
GRU4Rec    1.094 0.700 1.833 0.937
BERT4Rec   1.154 0.732 1.972 0.994
NextItNet  1.396 0.899 2.187 1.153
SASRec     1.640 1.074 2.500 1.350
LightSANs  1.651 1.087 2.578 1.384
VisRank    0.226 0.154 0.347 0.193
ACF        0.441 0.276 0.758 0.377
VBPR       0.467 0.288 0.832 0.405
"""

# Table 6: PixelNet on Pixel200K, the encoder's last 2 layers fine-tuned. One row per encoder and
# metric, one column per backbone.
TABLE_6_BACKBONES = ("MF", "FM", "DSSM", "SRGNN", "GRU4Rec", "BERT4Rec", "NextItNet", "SASRec",
                     "LightSANs")
TABLE_6 = """
RN50 R@5   0.203 0.593 0.567 1.349 1.343 1.404 1.270 1.546 1.461
RN50 N@5   0.120 0.363 0.349 0.852 0.832 0.883 0.794 0.972 0.919
RN50 R@10  0.357 1.024 0.960 2.224 2.294 2.391 2.140 2.633 2.417
RN50 N@10  0.169 0.501 0.475 1.132 1.138 1.199 1.073 1.321 1.226
ViT  R@5   0.264 0.632 0.712 1.261 1.210 1.431 1.280 1.522 1.443
ViT  N@5   0.162 0.385 0.448 0.779 0.745 0.903 0.807 0.952 0.898
ViT  R@10  0.472 1.124 1.242 2.152 2.102 2.450 2.215 2.583 2.461
ViT  N@10  0.229 0.543 0.617 1.065 1.031 1.230 1.106 1.292 1.224
"""

# Table 8: Pixel1M and Pixel8M. MF, FM, SASRec, BERT4Rec are IDNet, VBPR is ViNet, *_vit is
# PixelNet with ViT-B/32. Columns R@5 N@5 R@10 N@10.
TABLE_8 = """
Pixel1M MF            0.619 0.381 1.102 0.536
Pixel1M FM            1.058 0.662 1.759 0.887
Pixel1M SASRec        2.583 1.688 4.004 2.144
Pixel1M BERT4Rec      2.563 1.655 4.062 2.137
Pixel1M VBPR          0.437 0.268 0.773 0.375
Pixel1M SASRec_vit    2.765 1.777 4.402 2.303
Pixel1M BERT4Rec_vit  2.727 1.753 4.343 2.272
Pixel8M SASRec_vit    2.354 1.544 3.589 1.941
Pixel8M BERT4Rec_vit  2.051 1.332 3.178 1.694
"""

# the paper's encoder names -> the encoder names of our configs (open_clip's)
ENCODERS = {"RN50": "RN50", "ViT": "ViT-B-32"}
VINET = ("visrank", "vbpr", "acf")
VINET_ENCODER = "RN50"  # the paper's ViNet rows use CLIP RN50 features (pooled; spatial for ACF)


@dataclass(frozen=True)
class Figure:
    """One published row: our release and model names, the encoder (None for IDNet), metrics as
    fractions, and where the row comes from."""
    release: str
    model: str
    encoder: str | None
    metrics: dict
    table: str
    row: str

    @property
    def source(self) -> str:
        return f"{self.table}, row {self.row}"


def _fractions(cells) -> dict:
    return {m: round(float(c) / 100, 7) for m, c in zip(METRIC_ORDER, cells)}


def _table_5() -> list[Figure]:
    out = []
    for line in TABLE_5.strip().splitlines():
        name, *cells = line.split()
        model = name.lower()
        encoder = VINET_ENCODER if model in VINET else None
        out.append(Figure("pixel200k", model, encoder, _fractions(cells), "Table 5", name))
    return out


def _table_6() -> list[Figure]:
    by_column: dict[tuple[str, str], list[str]] = {}
    metric_of = {"R@5": "recall@5", "N@5": "ndcg@5", "R@10": "recall@10", "N@10": "ndcg@10"}
    for line in TABLE_6.strip().splitlines():
        encoder, metric, *cells = line.split()
        for backbone, cell in zip(TABLE_6_BACKBONES, cells, strict=True):
            by_column.setdefault((encoder, backbone), []).append((metric_of[metric], cell))
    out = []
    for (encoder, backbone), cells in by_column.items():
        metrics = {m: round(float(c) / 100, 7) for m, c in cells}
        out.append(Figure("pixel200k", f"pixelnet_{backbone.lower()}", ENCODERS[encoder],
                          {m: metrics[m] for m in METRIC_ORDER}, "Table 6", f"{encoder} {backbone}"))
    return out


def _table_8() -> list[Figure]:
    out = []
    for line in TABLE_8.strip().splitlines():
        release, name, *cells = line.split()
        backbone = name.removesuffix("_vit")
        model = f"pixelnet_{backbone.lower()}" if name.endswith("_vit") else name.lower()
        encoder = ENCODERS["ViT"] if name.endswith("_vit") else (VINET_ENCODER if model in VINET else None)
        out.append(Figure(release.lower(), model, encoder, _fractions(cells), "Table 8",
                          f"{release} {name}"))
    return out


FIGURES: tuple[Figure, ...] = tuple(_table_5() + _table_6() + _table_8())


def published(release: str, model: str, encoder: str | None = None) -> Figure | None:
    """The paper's row for `model` on `release` (for PixelNet and ViNet: with that encoder)."""
    if encoder:  # open_clip's -quickgelu variant is the same tower with OpenAI's activation
        encoder = encoder.removesuffix("-quickgelu")
    for figure in FIGURES:
        if figure.release == release.lower() and figure.model == model and (
                figure.encoder is None or figure.encoder == encoder):
            return figure
    return None


def encoders_reported(release: str, model: str) -> list[str]:
    """The encoders the paper reports `model` with on `release` (empty: not in the tables)."""
    return [f.encoder for f in FIGURES if f.release == release.lower() and f.model == model
            and f.encoder]


def markdown_table(release: str = "pixel200k") -> str:
    """The published figures of one release as a Markdown table, in percent (as the docs show)."""
    lines = ["| model | encoder | R@5 | N@5 | R@10 | N@10 | source |", "|---|---|---|---|---|---|---|"]
    for f in FIGURES:
        if f.release == release:
            cells = " | ".join(f"{f.metrics[m] * 100:.3f}" for m in METRIC_ORDER)
            lines.append(f"| {f.model} | {f.encoder or '-'} | {cells} | {f.source} |")
    return "\n".join(lines)


__all__ = ["ENCODERS", "FIGURES", "Figure", "METRIC_ORDER", "VINET", "encoders_reported",
           "markdown_table", "published"]
