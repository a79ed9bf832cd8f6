"""Where the publisher hosts the official PixelRec files, and how to recognise them (data only).

The publisher (github.com/westlake-repl/PixelRec, its README) shares the data on Google Drive:
a folder of interaction files (Pixel200K, Pixel1M, Pixel8M, PixelRec), a folder of item-information
files (the same four), one archive of all 408,374 covers named <item_id>.jpg, a PixelRec50K sample
folder (interactions, item information and covers) and an "integrated" Pixel200K archive. The
publisher forbids secondary downloads, so the official subsets are fetched from this hosting (or
from files the user downloaded from it by hand), never from a mirror.

A subset's files are found by name in the folders it draws from (`name_pattern`, searched in the
path of each listed entry, case-insensitively) and then told apart by content: an interactions file
has the header item_id,user_id,timestamp, an item-information file starts with item_id and holds the
count columns, a covers archive holds <item_id>.jpg files (zip or tar, told apart by its first bytes). The
publisher's extracted image and text vectors are listed too (`--features`). The published counts stay in
schemas/official_subsets.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

DRIVE_HOST = "https://drive.google.com"
HOST_ENV = "PIXELREC_OFFICIAL_HOST"  # another base address for the host (a proxy, a test server)
REPOSITORY = "https://github.com/westlake-repl/PixelRec"

PUBLISHER_LICENSE_NOTE = (
    "The official PixelRec data is for non-commercial research use under its authors' terms, "
    "and only from the publisher's own hosting: \"It's prohibited to privately modify the dataset "
    "and offer secondary downloads.\" (the PixelRec repository's README). Download it from the "
    f"links in {REPOSITORY}; cite the paper when you use it.")
PUBLISHER_RULE = "It's prohibited to privately modify the dataset and offer secondary downloads."
LICENSE_NAME = "pixelrec-publisher-terms"
LICENSE_LINK = REPOSITORY
CITATION = """@article{cheng2023image,
  title={An Image Dataset for Benchmarking Recommender Systems with Raw Pixels},
  author={Cheng, Yu and Pan, Yunzhu and Zhang, Jiaqi and Ni, Yongxin and Sun, Aixin and Yuan, Fajie},
  journal={arXiv preprint arXiv:2309.06789},
  year={2023}
}"""


@dataclass(frozen=True)
class DriveEntry:
    """A file or folder the publisher shares; `id` is its Drive id, `title` the README's words."""
    id: str
    title: str
    kind: str  # 'file' | 'folder'

    @property
    def link(self) -> str:
        """The address a person opens in a browser (always the publisher's own host)."""
        if self.kind == "folder":
            return f"{DRIVE_HOST}/drive/folders/{self.id}"
        return f"{DRIVE_HOST}/file/d/{self.id}/view"


INTERACTIONS = DriveEntry("1vR1lgQUZCy1cuhzPkM2q7AsdYRP43feQ", "Interaction", "folder")
ITEM_INFO = DriveEntry("1rXBM-zi5sSdLHNshXWtGgVReWLuYNgDB", "Item Information", "folder")
COVERS = DriveEntry("17V70KN6UOAdphNEc0wXlocFwgmI7hVOo", "Cover (all 408,374 covers)", "file")
PIXEL50K = DriveEntry("1bQPgM-6yAnzcD0jKBoUUheA9LL5xnCHG", "PixelRec50K sample", "folder")
# Pixel200K laid out for the publisher's own training code (not read here; listed for the record)
PIXEL200K_INTEGRATED = DriveEntry("1fu0tqCmmXkte5PAsyMo0DQrDS0zofTLH", "integrated Pixel200K", "file")
# The publisher's README, "Extracted Features": the folder, and in it the text and image vectors
FEATURES = DriveEntry("1ahUB5fwaBU-6RS2hjtEdBjoWw-Z4r6pk", "Extracted Features", "folder")
TEXT_FEATURES = DriveEntry("1t1ZknzSY-8KxhhfTWMORh66BOdV7qmCj", "Extracted Features: text vectors",
                           "file")
IMAGE_FEATURES = DriveEntry("12VW6o5AToMFWLbSILi5_c6tlSXS43qm6",
                            "Extracted Features: image vectors", "file")
OFFICIAL_FEATURES = {"image": IMAGE_FEATURES, "text": TEXT_FEATURES}
# How a features file found in a --from folder is told to be of a kind (its name, lower-cased)
FEATURE_KIND_WORDS = {"image": ("image", "img", "visual", "cover", "rn50", "vit", "clip"),
                      "text": ("text", "title", "bert", "txt")}
FEATURE_SUFFIXES = (".npy", ".npz", ".pt", ".pth", ".pkl", ".pickle", ".parquet", ".csv")


@dataclass(frozen=True)
class OfficialSource:
    name: str                            # release name (as in schemas.official_subsets)
    name_pattern: str                    # regex found in the path of the subset's listed files
    tables: tuple[DriveEntry, ...]       # where its interactions and item information lie
    covers: DriveEntry                   # the covers archive (or the folder holding it)

    def matches(self, path: str) -> bool:
        return re.search(self.name_pattern, path, re.IGNORECASE) is not None

    def links(self) -> list[str]:
        return [entry.link for entry in (*self.tables, self.covers)]


OFFICIAL_SOURCES: dict[str, OfficialSource] = {s.name: s for s in (
    # the sample's folder holds only its own files: every entry matches
    OfficialSource("pixel50k", r"", (PIXEL50K,), PIXEL50K),
    OfficialSource("pixel200k", r"pixel[-_ ]?200k", (INTERACTIONS, ITEM_INFO), COVERS),
    OfficialSource("pixel1m", r"pixel[-_ ]?1m", (INTERACTIONS, ITEM_INFO), COVERS),
    OfficialSource("pixel8m", r"pixel[-_ ]?8m", (INTERACTIONS, ITEM_INFO), COVERS),
    # PixelRec, never PixelRec50K: the name followed by anything but "50k"
    OfficialSource("pixelrec", r"(^|[/_ -])pixelrec(?![-_ ]?50k)", (INTERACTIONS, ITEM_INFO), COVERS),
)}

# How files are told apart by content (headers compared lower-cased, without spaces or quotes)
INTERACTIONS_HEADER = ("item_id", "user_id", "timestamp")
ITEM_INFO_MARKERS = ("item_id", "view_number")  # the first column, and one that must be there
COVER_NAME = re.compile(r"^(i[0-9]{1,12})\.jpg$")
TABLE_SUFFIXES = (".csv", ".zip")


def official_feature_name(kind: str) -> str:
    """The features/ name of the publisher's vectors of a kind (`--set features=official_image`)."""
    return f"official_{kind}"


def official_source(name: str) -> OfficialSource | None:
    return OFFICIAL_SOURCES.get(name.lower())


__all__ = ["CITATION", "COVER_NAME", "COVERS", "DRIVE_HOST", "DriveEntry", "FEATURE_KIND_WORDS",
           "FEATURE_SUFFIXES", "FEATURES", "HOST_ENV", "IMAGE_FEATURES", "OFFICIAL_FEATURES",
           "TEXT_FEATURES", "official_feature_name",
           "INTERACTIONS", "INTERACTIONS_HEADER", "ITEM_INFO", "ITEM_INFO_MARKERS", "LICENSE_LINK",
           "LICENSE_NAME", "OFFICIAL_SOURCES", "OfficialSource", "PIXEL200K_INTEGRATED", "PIXEL50K",
           "PUBLISHER_LICENSE_NOTE", "PUBLISHER_RULE", "REPOSITORY", "TABLE_SUFFIXES",
           "official_source"]
