"""Dodo Payments -> Customer.io bridge: the domain shared by both Lambda functions."""

__version__ = "0.1.0"
