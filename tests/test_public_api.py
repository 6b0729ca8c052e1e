import inspect

import dialnexa_async
from dialnexa_async import errors, models


def test_all_is_sorted_and_exactly_the_public_names() -> None:
    # Submodules are reachable but not star-exported; "@py_*" names come from pytest's rewriting.
    public = {
        name
        for name, value in vars(dialnexa_async).items()
        if (not name.startswith(("_", "@")) or name == "__version__")
        and not inspect.ismodule(value)
    }
    assert dialnexa_async.__all__ == sorted(dialnexa_async.__all__)
    assert set(dialnexa_async.__all__) == public


def test_every_error_and_model_is_exported() -> None:
    for module in (errors, models):
        for name in module.__all__:
            assert getattr(dialnexa_async, name) is getattr(module, name)


def test_py_typed_is_shipped() -> None:
    from importlib.resources import files

    assert files("dialnexa_async").joinpath("py.typed").is_file()


def test_the_pytest_plugin_loads_without_pytest_asyncio() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pytest_asyncio'] = None\n"
        "import dialnexa_async.testing.pytest_plugin as plugin\n"
        "assert not hasattr(plugin, 'dialnexa_client')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
