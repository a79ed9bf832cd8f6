"""ViNet: recommenders over frozen, pre-extracted image features (protocol 4.4).

- features.py: `pixelrec extract-features` (pixelrec_data/commands/features.py) and the loaders;
- visrank.py (no training), vbpr.py (PAIR), acf.py (position samples + user id);
- configs/<model>.yaml: their hyper-parameters (the paper's values).

Registering them with the trainer (its files, so listed here rather than edited):
  models/__init__.py MODELS:
      "visrank": "pixelrec_data.baselines.vinet.visrank:VisRank",
      "vbpr": "pixelrec_data.baselines.vinet.vbpr:VBPR",
      "acf": "pixelrec_data.baselines.vinet.acf:ACF",
  with model_class importing a dotted module path as is:
      path = module if "." in module else f"{__name__}.{module}"
  configs/: copy vinet/configs/{visrank,vbpr,acf}.yaml;
  train.Run: pass the release folder, `self.config["release"] = str(release)` before building
  the model (the models read <release>/features/<features>.npy);
  samples.PositionSamples.batch: add `"user": self.users[index][b]` (ACF needs the user id).
"""
