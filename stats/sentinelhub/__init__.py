"""Sentinel Hub's APIs on the polyfis engine: the Feature Info Service (:mod:`.fis`), the Statistical API
(:mod:`.statistical`) and the version-3 evalscript runtime it uses (:mod:`.evalscript`).

Each module parses its API's request into the engine's objects (:class:`stats.request.Area`,
:class:`stats.request.TimeRange`, :class:`stats.request.QueryOptions`) and renders the answer in the API's
own shape; the computing is the shared core's.
"""
