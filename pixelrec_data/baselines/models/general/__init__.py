"""General (non-sequential) recommenders: Random, Pop, MF, LightGCN, FM, DSSM."""
