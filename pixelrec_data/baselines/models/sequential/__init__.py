"""Sequential recommenders over the last 10 items: SASRec, BERT4Rec, GRU4Rec, NextItNet, SRGNN,
LightSANs."""
