"""The reference suite needs the hil_rigs pytest plugin (its fixtures, markers and --rig).

Installed (``pip install -e '.[test]'``, as ``scripts/test.sh`` does), the plugin comes through
its ``pytest11`` entry point. Without it (a checkout that is not installed, run without
``-p hil_rigs.pytest_plugin``) the run stops with a usage error saying so: a suite left out
must not look like a suite that passed.
"""
import pytest

_PLUGIN = "hil_rigs.pytest_plugin"


def pytest_configure(config):
    if not config.pluginmanager.has_plugin(_PLUGIN):
        raise pytest.UsageError(f"tests/hil needs the {_PLUGIN} pytest plugin, which is not loaded: "
                                f"pip install -e . (it registers the plugin) or run pytest -p {_PLUGIN}")
