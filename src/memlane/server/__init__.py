"""`memlane serve`: memlane over HTTP (pip install 'memlane[server]'). See app.py."""
from .app import ServerSettings, create_app, mount_mcp

__all__ = ["ServerSettings", "create_app", "mount_mcp"]
