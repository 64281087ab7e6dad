"""The trainer: SFT on documents and chats, LoRA/full/QLoRA, ft:pt mixing, distributed configs (design §5).

    from orglab.train import load_recipe, train_organism, train_control, parse_mix, mix
"""

from orglab.train.mixing import mix, mix_suffix, parse_mix
from orglab.train.recipe import Recipe, family_defaults, load_recipe, make_recipe

_API = ("organism_name", "prepare_data", "train_control", "train_organism")


def __getattr__(name: str):
    # Training needs torch; the recipe and mixing (pydantic only) must not, so the CLI builds its flags fast.
    if name in _API:
        from orglab.train import api

        return getattr(api, name)
    raise AttributeError(f"module 'orglab.train' has no attribute '{name}'")


__all__ = ["Recipe", "family_defaults", "load_recipe", "make_recipe", "mix", "mix_suffix", "organism_name",
           "parse_mix", "prepare_data", "train_control", "train_organism"]
