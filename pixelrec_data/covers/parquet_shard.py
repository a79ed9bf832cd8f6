"""The parquet shard of covers: every items column plus `image` ({bytes, path}: the Hugging Face
Image encoding; null where the item has no cover), written one row group at a time, each group's
covers read only when it is made, so a shard's covers never sit in memory together. The same covers
give the same bytes whether a fetch or pack-covers writes them.
"""
from __future__ import annotations

import json
from pathlib import Path

from schemas.atomic import atomic_path
from schemas.manifest import sha256_file

from .writing import loaded

ROWS_PER_GROUP = 100  # a reader decodes a few images at a time ...
GROUP_IMAGE_BYTES = 8 * 1024 * 1024  # ... and a group closes earlier at this many image bytes


def write_parquet_shard(out: Path, items, bodies: list) -> str:
    """Write the shard of `items` (a pyarrow table) with `bodies` (each bytes, None or a function
    that reads them) in items order to `out`, atomically; return its sha256."""
    import pyarrow.parquet as pq

    schema = parquet_schema(items.schema)
    # images are already compressed: no codec on top of them (readers skip a decompression pass),
    # and no min/max of their bytes in the footer (meaningless, and costly to compute: several
    # times a group's image bytes in memory)
    codecs = {c: "none" if c == "image" else "zstd" for c in schema.names}
    with atomic_path(out) as tmp:
        with pq.ParquetWriter(tmp, schema, compression=codecs,
                              use_dictionary=[c for c in schema.names if c != "image"],
                              write_statistics=[c for c in _leaves(schema) if c != "image.bytes"]) as writer:
            ids = items.column("item_id").to_pylist()
            for start, group in _row_groups(bodies):
                part = items.slice(start, len(group))
                images = _image_array(ids[start:start + len(group)], group)
                writer.write_table(part.append_column("image", images).cast(schema),
                                   row_group_size=len(group))
            if not items.num_rows:
                writer.write_table(schema.empty_table())
        return sha256_file(tmp)


def _leaves(schema) -> list[str]:
    """The dotted paths of the schema's leaf columns (a struct's fields, the others as they are)."""
    return [f"{field.name}.{child.name}" if field.type.num_fields else field.name
            for field in schema for child in (list(field.type) if field.type.num_fields else [field])]


def _image_array(ids: list[str], bodies: list):
    """The image structs of one group, its bytes copied at most once into Arrow (a builder fed
    Python bytes copies each several times as it grows); null where there is no body."""
    import numpy as np
    import pyarrow as pa

    sizes = np.fromiter((len(body) if body else 0 for body in bodies), np.int64, len(bodies))
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    present = [body for body in bodies if body]
    # a group of one cover (a large one) is not copied at all
    data = pa.py_buffer(present[0] if len(present) == 1 else b"".join(present))
    blobs = pa.Array.from_buffers(pa.binary(), len(bodies), [None, pa.py_buffer(offsets), data])
    return pa.StructArray.from_arrays([blobs, pa.array([f"{item}.jpg" for item in ids])],
                                      fields=list(IMAGE_TYPE()), mask=pa.array(sizes == 0))


def _row_groups(bodies: list):
    """(first row, bodies) of each row group: ROWS_PER_GROUP rows, or fewer once their images
    reach GROUP_IMAGE_BYTES; each body read only when its group is made."""
    start, group, size = 0, [], 0
    for source in bodies:
        body = loaded(source)
        group.append(body)
        size += len(body or b"")
        if len(group) == ROWS_PER_GROUP or size >= GROUP_IMAGE_BYTES:
            yield start, group
            start, group, size = start + len(group), [], 0
    if group:
        yield start, group


def IMAGE_TYPE():  # noqa: N802 - a constant, built on first use (pyarrow loads lazily)
    import pyarrow as pa

    return pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def parquet_schema(items_schema):
    """The items schema plus `image`, with the `datasets` features in the schema metadata (so
    `datasets.Features.from_arrow_schema` sees an Image column, not a struct)."""
    import pyarrow as pa
    from datasets import Features, Image  # heavy import, only when writing

    schema = pa.schema(list(items_schema.remove_metadata()) + [pa.field("image", IMAGE_TYPE())])
    features = Features.from_arrow_schema(schema.remove_metadata())
    features["image"] = Image()
    meta = {b"huggingface": json.dumps({"info": {"features": features.to_dict()}}).encode()}
    return schema.with_metadata(meta)
