"""One module per area of the `pixelrec` command; each holds click commands only (parse, call, print)."""
