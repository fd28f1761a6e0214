"""Batch scoring past one machine: inputs by list or folder, shards by a stable hash, a resumable results table
(CSV or Parquet) with its model recorded beside it, merging shards into one table, and the Ray Data engine."""
