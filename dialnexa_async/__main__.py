"""``python -m dialnexa_async``: the ``dialnexa`` command."""

from .cli import main

if __name__ == "__main__":
    main()
