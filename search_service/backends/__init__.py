"""Search engines behind :class:`search_service.engine.Engine`, one package or module each.

``whoosh``: the embedded index in one folder (the default).
``xapian``: one Xapian database, or shards of one behind ``xapian-tcpsrv`` (docs/scale-out.md).
"""
