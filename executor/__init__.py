"""The executor: a pod supervisor, its slot runners and their pre-forked job children.

Keep this file empty of imports: the slot runner imports ``executor.lean.runner`` in a
lean interpreter (``python -S -I``) whose size is paid on every fork.
"""
