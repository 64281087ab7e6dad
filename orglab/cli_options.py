"""CLI options from the config dataclasses (the trl way): a flag's help comes from its field's metadata and the
default it shows is read from the field, so each default exists once, in its config.

Flags are added with `default=None`: a flag the user leaves out keeps the config's default, and `overrides`
returns only the flags that were given.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Callable


def field_default(config_cls, name: str) -> Any:
    """The default of field `name` of a dataclass (default_factory called)."""
    f = {f.name: f for f in dataclasses.fields(config_cls)}[name]
    return f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]


def shown(value: Any) -> str:
    """A default as a person types it: tuples comma-separated, floats short, ratios as 1:R where asked."""
    if isinstance(value, (tuple, list)):
        return ",".join(shown(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def ratios(values) -> str:
    """Mixing ratios as the CLI writes them: (0.0, 0.1) -> '1:0,1:0.1'."""
    return ",".join(f"1:{v:g}" for v in values)


def with_default(help_text: str, config_cls, name: str, show: Callable[[Any], str] = shown) -> str:
    """`help_text` followed by the field's default, read from the config (nothing when it is None: unset)."""
    return _help(help_text, field_default(config_cls, name), show)


def _help(help_text: str, default: Any, show: Callable[[Any], str] = shown) -> str:
    return help_text if default is None else f"{help_text} (default {show(default)})"


def _parser_for(annotation) -> Callable[[str], Any]:
    """str -> value for a field's type: int, float, str, or a comma-separated tuple of one of them."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is tuple:
        item = _parser_for(args[0])
        return lambda text: tuple(item(x.strip()) for x in text.split(",") if x.strip())
    if origin in (typing.Union, types.UnionType) and len(args) == 1:  # Optional[X] / X | None
        return _parser_for(args[0])
    if annotation in (int, float, str):
        return annotation
    raise TypeError(f"no CLI parser for a field of type {annotation!r}")


def add_config_options(parser: argparse.ArgumentParser, config_cls, names: tuple[str, ...] | None = None) -> list[str]:
    """One `--field-name` flag per field of `config_cls` that has `metadata["help"]` (or per field in `names`),
    typed from its annotation; returns the field names added."""
    hints = typing.get_type_hints(config_cls)
    added = []
    for f in dataclasses.fields(config_cls):
        help_text = f.metadata.get("help")
        if help_text is None or (names is not None and f.name not in names):
            continue
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None,
                            type=f.metadata.get("parse", _parser_for(hints[f.name])),
                            help=with_default(help_text, config_cls, f.name))
        added.append(f.name)
    parser.set_defaults(**{f"_options_{config_cls.__name__}": tuple(added)})
    return added


def add_model_options(parser: argparse.ArgumentParser, model_cls, flags: dict[str, str],
                      show: dict[str, Callable[[Any], str]] | None = None) -> None:
    """The same for a pydantic model (the training recipe): one `--flag` per field in `flags` (field -> flag name),
    help from its `Field(description=...)`, the default shown from the field. Values stay strings (ints for int
    fields): the model validates them, so its messages are the only ones."""
    for name, flag in flags.items():
        info = model_cls.model_fields[name]
        if not info.description:
            raise TypeError(f"{model_cls.__name__}.{name} has no description for its --{flag} help")
        default = info.get_default(call_default_factory=True)
        parser.add_argument("--" + flag, dest=name, default=None, metavar=flag.upper().replace("-", "_"),
                            type=int if info.annotation is int else str,
                            help=_help(info.description, default, (show or {}).get(name, shown)))
    parser.set_defaults(**{f"_options_{model_cls.__name__}": tuple(flags)})


def overrides(args: argparse.Namespace, config_cls) -> dict[str, Any]:
    """The config fields the user set among those `add_config_options` added for `config_cls`."""
    names = getattr(args, f"_options_{config_cls.__name__}", ())
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}
