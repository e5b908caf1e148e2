"""The `warmfleet` command and what only it uses (batch runs, the benchmark launcher, status, shell)."""
