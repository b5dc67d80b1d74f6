"""AWS: the boto3 gateway, credentials per cluster, deadline waits; nothing else calls boto3."""
