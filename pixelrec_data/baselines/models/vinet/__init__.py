"""ViNet: recommenders over frozen, pre-extracted image features (as in the paper's official code).

- features.py: `pixelrec extract-features` (pixelrec_data/commands/features.py) and the loaders;
- visrank.py (no training), vbpr.py (PAIR), acf.py (position samples + user id);
- configs/<model>.yaml: their hyper-parameters (the paper's values).

Registered in models/__init__.py as `visrank`, `vbpr`, `acf` (configs/<name>.yaml); the trainer's
Run (trainer/train.py) sets config["release"], from which the models read
<release>/features/<features>.npy. ACF's position samples carry the user id
(data/samples.py, PositionSamples.batch: batch["user"]).
"""
