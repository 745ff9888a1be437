"""Embedding on Ray Data: a pool of model actors over local files or files at URLs.

:func:`clamp3.distributed.embed.embed_on_ray` writes a Parquet file of vectors (``clamp3 embed
--ray``); :meth:`clamp3.library.Library.add` with ``ray=`` fills a library (``clamp3 library add
--ray``, :mod:`clamp3.library.distributed`). Both share :mod:`clamp3.distributed.job` (the runtime and
the actors) and :mod:`clamp3.distributed.urls` (listing and reading ``s3://``, ``gs://``, ...).
"""
