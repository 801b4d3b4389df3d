"""Files a run writes: atomic writes, summary.json and run.h5."""
