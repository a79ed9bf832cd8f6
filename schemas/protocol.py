"""The paper's rules, as named constants: one place for every stage that applies them.

- ITEM_USER_CAP: at most this many users per video (the crawl stops collecting a video's
  commenters there, and the build keeps the earliest ones).
- MIN_USER_INTERACTIONS: users with at least this many interactions are eligible for the subsets
  (Pixel8M, Pixel1M, Pixel200K).
- MAX_SEQUENCE_LENGTH: sequential models see at most this many items of a user's history.
"""
ITEM_USER_CAP = 6_500
MIN_USER_INTERACTIONS = 5
MAX_SEQUENCE_LENGTH = 10
