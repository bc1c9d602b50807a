"""The real FunctionApp's functions, indexed once per process."""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def registered_functions() -> dict[str, Any]:
    """The app's functions by name, as the Functions worker indexes them."""
    import function_app

    # azure-functions 1.26: a second get_functions() on the same app raises "does not have a
    # unique function name", so index once per process.
    return {fn.get_function_name(): fn for fn in function_app.app.get_functions()}
