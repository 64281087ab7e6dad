"""The trainer: SFT on documents and chats, LoRA/full/QLoRA, ft:pt mixing, distributed configs (design §5).

    from orglab.train import load_recipe, train_organism, train_control, parse_mix, mix
"""

from orglab.train.api import organism_name, prepare_data, train_control, train_organism
from orglab.train.mixing import mix, mix_suffix, parse_mix
from orglab.train.recipe import Recipe, family_defaults, load_recipe, make_recipe

__all__ = ["Recipe", "family_defaults", "load_recipe", "make_recipe", "mix", "mix_suffix", "organism_name",
           "parse_mix", "prepare_data", "train_control", "train_organism"]
