"""The downloader's limits and choices, in a module with no imports, so the command's help can
quote them without loading aiohttp or Pillow."""

MAX_COVER_BYTES = 32 * 1024 * 1024  # a body over this is cut off ('too_large')
MAX_REDIRECTS = 5  # one more is 'too_many_redirects', final
# Pixel-count limit against decompression bombs, ours rather than PIL's global MAX_IMAGE_PIXELS
# (which a host program may change): 40M pixels is far above any real cover (the platform's are
# at most a few megapixels) and an RGB decode of that size stays near 120 MB.
MAX_PIXELS = 40_000_000
JPEG_QUALITY = 95
RESIZE_MODES = ("keep_ratio", "center_crop", "squash")
ORIGINAL = "original"  # the stored-format label of covers kept as served (else a resize label)
