"""Model configs declared once: the constructor's own signature.

`@register_to_config` on a module's `__init__` records the arguments it is called with, defaults filled in, as
`self.config` before the body runs (as diffusers' `register_to_config` does): a plain dict in signature order, which
is what `config.json` holds and what `cls(**config)` rebuilds the module from. The body may then normalise a value
in place (a tuple to a list) or record a later change (`add_pixel_refiner`, `add_local_mixers`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def register_to_config(init: Callable | None = None, *, ignore: tuple[str, ...] = (), **fixed) -> Callable:
    """Decorates `__init__(self, ...)`: `self.config` = `fixed` entries first (e.g. `kind="byte"`), then every
    named argument but those in `ignore` (e.g. a module passed in, which is not config); `**kwargs` are left out
    (hub options). Usable bare (`@register_to_config`) or with options."""

    def decorate(init: Callable) -> Callable:
        signature = inspect.signature(init)
        names = [name for name, p in list(signature.parameters.items())[1:] if p.kind in _NAMED and name not in ignore]

        @functools.wraps(init)
        def __init__(self, *args, **kwargs):
            bound = signature.bind(self, *args, **kwargs)  # a TypeError names a missing or unknown argument
            bound.apply_defaults()
            # a plain attribute, so it may be set before nn.Module.__init__ runs in the body
            object.__setattr__(self, "config", {**fixed, **{name: bound.arguments[name] for name in names}})
            init(self, *args, **kwargs)

        return __init__

    return decorate if init is None else decorate(init)
