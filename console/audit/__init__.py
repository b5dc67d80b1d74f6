"""The audit log beyond the store: the chain's head anchored in S3, and its verification (the
chain itself is hashed as rows are appended, in console/store/chain.py)."""
