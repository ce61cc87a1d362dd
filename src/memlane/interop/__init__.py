"""Moving memories between stores, losslessly (export.py, importer.py, the file format in format.py and
docs/export-format.md), and bringing a mem0 installation's memories over (mem0.py). Memory.export,
Memory.import_file and Memory.import_mem0 are the public entry points."""
from .format import FORMAT, VERSION

__all__ = ["FORMAT", "VERSION"]
