"""The synthetic world: a deterministic, vectorised stand-in for the platform's data.

- `world`: `generate_world` (a whole world in memory, served by the simulator) and `write_raw`
  (raw/ written as a crawl of that world would, at any scale);
- `videos`: topics, cover features, popularity, ids and metadata of the videos;
- `events`: users, sessions and their comment/danmaku events;
- `catalog`: the fixed vocabulary (channels, tags, cover features, title words);
- `rng`: counter-based random numbers and id permutations, so chunking never changes a value.
"""
from .world import COVER_URL, DEFAULT_MEAN, World, WorldParams, generate_world, make_params, write_raw

__all__ = ["COVER_URL", "DEFAULT_MEAN", "World", "WorldParams", "generate_world", "make_params",
           "write_raw"]
