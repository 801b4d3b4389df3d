"""Orchestration: one run, one calibration, a sweep of many cells."""
