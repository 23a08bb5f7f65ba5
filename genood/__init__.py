"""genood: generative / density-based OOD detection."""
__version__ = "0.1.0"
