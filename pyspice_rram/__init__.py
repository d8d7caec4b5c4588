"""pyspice-rram."""
