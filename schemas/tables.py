"""Arrow schemas of every table of the release contract (the one place that states them).

One place for each fact: writers build tables to these schemas and readers check files against them
through schemas.io.
"""
import pyarrow as pa

SCHEMA_VERSION = "1.0"

COUNT_COLUMNS = [
    "view_number", "comment_number", "thumbup_number", "share_number",
    "coin_number", "favorite_number", "barrage_number",
]

RAW_VIDEOS = pa.schema([
    ("platform_video_id", pa.string()),
    ("aid", pa.int64()),
    ("title", pa.string()),
    ("description", pa.string()),
    ("tag", pa.string()),
    ("channel", pa.string()),
    ("cover_url", pa.string()),
    *[(c, pa.int64()) for c in COUNT_COLUMNS],
    ("release_time", pa.int64()),
    ("duration_s", pa.int32()),
    ("crawled_at", pa.int64()),
])

RAW_INTERACTIONS = pa.schema([
    ("platform_video_id", pa.string()),
    ("user_key", pa.uint64()),
    ("timestamp", pa.int64()),
    ("source", pa.string()),  # 'comment' | 'danmaku'
])

# The official item-info columns, in their order, then ours.
OFFICIAL_ITEM_COLUMNS = ["item_id", *COUNT_COLUMNS, "title", "tag", "description"]
ITEMS = pa.schema([
    ("item_id", pa.string()),
    *[(c, pa.int64()) for c in COUNT_COLUMNS],
    ("title", pa.string()),
    ("tag", pa.string()),
    ("description", pa.string()),
    ("cover_url", pa.string()),
    ("release_time", pa.int64()),
    ("channel", pa.string()),
    ("duration_s", pa.int32()),
])

# Official item-info columns our items table does not name: kept, before `title` as in the
# publisher's files, when the file has them (Pixel200K's item_info.csv has title_en).
OFFICIAL_EXTRA_ITEM_COLUMNS = ["title_en"]


def items_schema(extra: list[str] = ()) -> pa.Schema:
    """ITEMS with the official extra columns `extra` (text) inserted before `title`."""
    schema = ITEMS
    for name in extra:
        schema = schema.insert(schema.get_field_index("title"), pa.field(name, pa.string()))
    return schema


OFFICIAL_INTERACTION_COLUMNS = ["item_id", "user_id", "timestamp"]
INTERACTIONS = pa.schema([
    ("item_id", pa.string()),
    ("user_id", pa.string()),
    ("timestamp", pa.int64()),
    ("source", pa.string()),  # 'comment' | 'danmaku' | 'official' (imported files carry no source)
])

SPLIT = pa.schema([
    ("item_id", pa.string()),
    ("user_id", pa.string()),
    ("timestamp", pa.int64()),
])

COVERS = pa.schema([
    ("item_id", pa.string()),
    ("status", pa.string()),  # 'ok' | error kind
    ("error", pa.string()),
    ("sha256", pa.string()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("bytes", pa.int64()),
    ("phash", pa.string()),
    ("attempts", pa.int32()),  # requests made for the item by the run that produced the row
])

TABLES = {
    "raw_videos": RAW_VIDEOS,
    "raw_interactions": RAW_INTERACTIONS,
    "items": ITEMS,
    "interactions": INTERACTIONS,
    "split": SPLIT,
    "covers": COVERS,
}

# Columns added after files were first written: a file without one reads as all nulls.
ADDED_COLUMNS = {
    "covers": ["attempts"],
}

# Columns that must never hold nulls (the rest may, e.g. items imported from older official files).
REQUIRED_NON_NULL = {
    "raw_videos": ["platform_video_id", "cover_url"],
    "raw_interactions": ["platform_video_id", "user_key", "timestamp", "source"],
    "items": ["item_id"],
    "interactions": ["item_id", "user_id", "timestamp"],
    "split": ["item_id", "user_id", "timestamp"],
    "covers": ["item_id", "status"],
}

SPLIT_NAMES = ("train", "validation", "test")
SEQUENCES_DIR = "sequences"  # <release>/sequences/<split>.parquet: derived from the split files
