"""Stand-in for A1111 v1.10.1's ``modules`` package (tests only)."""
