"""The one place dsnet's version is written; ``pyproject.toml`` and ``dsnet.__version__`` read it."""
__version__ = "0.1.0"
