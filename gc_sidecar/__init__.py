"""The GC sidecar: recycles pods that stayed warm too long, drained first."""
