"""The architect's tools: counters, cycles, energy, area and the report built on them."""
