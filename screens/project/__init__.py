"""The project screen: one project in every cluster, down to each instance."""
