"""`python -m pixelrec_data.simulator ...` = `pixelrec simulate ...`."""
from pixelrec_data.cli import main

if __name__ == "__main__":
    import sys
    main(["simulate", *sys.argv[1:]])
