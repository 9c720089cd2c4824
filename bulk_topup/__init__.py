"""bulk_topup: order sheets in, paid OneClickDz top-ups out, never twice."""

__version__ = "0.1.0"
