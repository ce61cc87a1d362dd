"""Rerankers: rescore a search's best candidates with a slower, closer look (see base.py)."""
