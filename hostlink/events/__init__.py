"""Event-camera input: file readers (formats), data sets (dataset), binning (binning), the synthetic
N-MNIST-like digits (synth)."""
