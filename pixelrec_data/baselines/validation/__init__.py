"""`validate-baselines`: running a suite and its checks (validate), the paper's published figures
(published) and the bands around them (bands), the ratio and cold-group claims (claims), the
leaderboard (leaderboard) and report.html (report)."""
