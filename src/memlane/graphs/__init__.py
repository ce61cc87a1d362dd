"""Graph memory in an external graph engine (FalkorDB, Neo4j) instead of the store's own tables.

The engine cannot share the store's transaction, so a write goes to the store first with an outbox entry
(ChangeSet.outbox) holding the graph changes, and then to the engine, whose apply is idempotent; entries an
engine has not yet taken (a crash, or the engine down) are applied again on the next write and on open
(outbox.py). The engines speak Cypher, written once (cypher.py); a driver per engine only runs queries.
"""
