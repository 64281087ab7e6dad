"""The trainer: SFT on documents and chats, LoRA/full/QLoRA, ft:pt mixing, distributed configs (SPEC §5)."""
