"""The history screens: recorded deploys, one deploy's detail, the filter."""
