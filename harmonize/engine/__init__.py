"""The engine: normalization (orientation, spacing, intensity), the pipeline, executors, run config."""
