"""The sample configs shipped with the console as console.config.samples (demo.toml, example.toml)."""
