"""Code that runs inside the lean processes: stdlib only (a test pins the modules they load)."""
