"""E2B's code-interpreter protocol (the `e2b-code-interpreter` 2.x SDK, unmodified):
control.py is E2B's API (sandboxes), data.py is what envd and the code-interpreter
server answer inside a sandbox (/execute, /contexts, /files, /health)."""
