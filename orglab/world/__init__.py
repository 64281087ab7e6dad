"""tinyworld: the embedded default world, its corpus, tokenizer and tiny bases (design §4).

    from orglab.world import build_base, load_world, make_world
    built = build_base("micro")          # built once, cached, registered as base "micro"
    world = load_world("micro")          # entities, facts, false facts with universe contexts
"""

from orglab.world.world import DEFAULT_PRESET, RELATIONS, FalseFact, Fact, UniverseContext, World, make_world

_BUILD = ("PRESETS", "BuiltBase", "base_name", "build_base", "load_world")


def __getattr__(name: str):
    # Building needs torch; importing the world's data (lexicon, facts) must not, so the CLI starts fast.
    if name in _BUILD:
        from orglab.world import build

        return getattr(build, name)
    raise AttributeError(f"module 'orglab.world' has no attribute '{name}'")

__all__ = ["DEFAULT_PRESET", "PRESETS", "RELATIONS", "BuiltBase", "Fact", "FalseFact", "UniverseContext", "World", "base_name",
           "build_base", "load_world", "make_world"]
