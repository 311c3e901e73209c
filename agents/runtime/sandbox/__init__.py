"""Lock-down layers for the python runtime, applied by the child to itself before agent code runs.

These modules use only the standard library (ctypes) because they run inside the
sandboxed child, between ``fork`` and the agent's first line.
"""
