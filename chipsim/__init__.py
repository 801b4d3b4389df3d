"""chipsim: a cycle-level simulator of a mixed-signal neuromorphic chip with on-chip LTL learning."""

__version__ = "0.1.0"
