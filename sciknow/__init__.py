"""sciknow: a knowledge assistant for scientific software (the hallway package)."""

__version__ = "0.1.0"
