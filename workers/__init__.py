"""Speech engines and the life cycle of the worker processes that host them.

Nothing in here may be imported by the web process except `workers.engines.registry`
(names only) and `workers.status` (reads what live workers report through Redis):
engines pull in heavy libraries (torch, onnxruntime) that the web must never load.
"""
