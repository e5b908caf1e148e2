"""The contract: every record, key and message that crosses a process or Redis boundary, one typed
definition each. Imports nothing else of ours; the lean processes import only its stdlib modules
(messages)."""
