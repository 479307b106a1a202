"""msgops: production checklists for messaging systems, made executable."""

__version__ = "0.1.0"
