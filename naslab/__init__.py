"""naslab: neural architecture search and performance prediction on graph-encoded spaces."""

__version__ = "0.1.0"
