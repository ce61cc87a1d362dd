"""A database path that cannot be opened is a ConfigurationError naming it, never a raw sqlite3/OS error."""
import pytest

from memlane import ConfigurationError, Memory

from conftest import config_for


def unopenable(tmp_path):
    plain = tmp_path / "plainfile"
    plain.write_text("x")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not an SQLite database file " * 200)
    folder = tmp_path / "a-folder"
    folder.mkdir()
    return {"under a file": plain / "m.db", "not a database": junk, "a directory": folder}


@pytest.mark.parametrize("case", ["under a file", "not a database", "a directory"])
def test_unopenable_database_path_is_a_configuration_error(tmp_path, case):
    path = unopenable(tmp_path)[case]
    with pytest.raises(ConfigurationError, match="cannot open"):
        Memory(config_for(path))
