"""tcpchat: a small terminal chat server and client that speak one line-based protocol."""

__version__ = "0.1.0"
