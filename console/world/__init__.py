"""The embedded AWS world for the demo and tests: moto, the seed fleet, the SSH jump host.

The only part that imports moto (the [demo] extra; an import contract says so): without it,
console.world.server raises WorldError naming the extra.
"""
