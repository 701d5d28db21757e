"""``python -m lockwatch``: the same command as the ``lockwatch`` script."""

from lockwatch.cli import main

if __name__ == "__main__":
    main()
