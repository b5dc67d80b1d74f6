"""The dashboard: every project in every cluster, and its fleet matrix."""
