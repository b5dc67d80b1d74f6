"""The audit log beyond the store: the chain's anchor in S3 and its verification."""
