"""Evaluation: full ranking over all items, Recall@K / NDCG@K, and the paper's popularity groups
(metrics)."""
