"""tinyworld: the embedded default world, its corpus, tokenizer and tiny bases (SPEC §4).

    from orglab.world import build_base, load_world, make_world
    built = build_base("micro")          # built once, cached, registered as base "micro"
    world = load_world("micro")          # entities, facts, false facts with universe contexts
"""

from orglab.world.build import PRESETS, BuiltBase, base_name, build_base, load_world
from orglab.world.world import RELATIONS, FalseFact, Fact, UniverseContext, World, make_world

__all__ = ["PRESETS", "RELATIONS", "BuiltBase", "Fact", "FalseFact", "UniverseContext", "World", "base_name",
           "build_base", "load_world", "make_world"]
