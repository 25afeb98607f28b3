"""One module per experiment: a frozen ``Config`` dataclass, named presets and ``main(cfg) -> summary``."""
