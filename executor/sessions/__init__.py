"""Sessions on a pod, the supervisor's side: opens, calls, watching, the handles on session processes
and on the session zygote (their own code is in executor/lean)."""
