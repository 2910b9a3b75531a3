"""The reference suite needs the hil_rigs pytest plugin (its fixtures, markers and --rig).

Installed (``pip install -e '.[test]'``, as ``scripts/test.sh`` does), the plugin comes through
its ``pytest11`` entry point. On a checkout that is not installed and run without
``-p hil_rigs.pytest_plugin``, these tests are left out with one line saying so, instead of
failing on unknown fixtures and markers.
"""
from pathlib import Path

_PLUGIN = "hil_rigs.pytest_plugin"
_HERE = Path(__file__).parent
_left_out = []


def pytest_ignore_collect(collection_path, config):
    if config.pluginmanager.has_plugin(_PLUGIN) or collection_path == _HERE:
        return None
    _left_out.append(collection_path)
    return True


def pytest_terminal_summary(terminalreporter):
    if _left_out:
        terminalreporter.write_line(f"tests/hil left out: the {_PLUGIN} plugin is not loaded "
                                    f"(pip install -e . or pytest -p {_PLUGIN})", yellow=True)
