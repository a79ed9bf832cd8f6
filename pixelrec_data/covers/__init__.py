"""The covers of a release: the one room for everything about cover images.

- `store`: where a release keeps its covers (the layout of every format, the status table) and the
  one reader every consumer uses (`locate`, `read`, `open_image`, `statuses`);
- `formats`: one class per storage format (files, parquet, webdataset), each writing and reading
  its shards behind the same interface; the registry is `store.FORMATS`;
- `fetch/`: `pixelrec fetch-covers`, from items.parquet's URLs to stored covers and statuses;
- `pack`: `pixelrec pack-covers`, the converter between formats;
- `cache`, `cache_reader`: the training image cache (`pixelrec prepare-images`) and its reader.
The commands that change a release through these finish it with pipelines.finish.
"""
