"""The one exception type for bad user input; the command line turns it into exit status 2."""


class DataError(Exception):
    """A problem with the user's data or arguments: the message names the file, row or flag and the fix."""


class RunFailed(Exception):
    """A command ran but produced nothing usable (e.g. every trial of a sweep failed); exit status 1, one message."""


def bullet_list(items: list[str], *, limit: int = 10) -> str:
    """Show the first `limit` items, one per line, and how many more there are."""
    shown = [f"  - {item}" for item in items[:limit]]
    if len(items) > limit:
        shown.append(f"  ... and {len(items) - limit} more")
    return "\n".join(shown)
