"""Generated names for runs and logged models, the way MLflow makes them: adjective-noun-number."""

from __future__ import annotations

import random

_ADJECTIVES = ("able", "bold", "brave", "bright", "calm", "clever", "crisp", "daring", "eager", "fair",
               "gentle", "glad", "grand", "happy", "honest", "jolly", "keen", "kind", "lively", "lucky",
               "merry", "mighty", "neat", "nimble", "patient", "polite", "proud", "quick", "quiet", "rare",
               "sharp", "shy", "smart", "steady", "sunny", "swift", "tidy", "vivid", "warm", "wise")
_NOUNS = ("ant", "bass", "bat", "bear", "bee", "carp", "cat", "colt", "crab", "crow", "deer", "dove", "duck",
          "eel", "elk", "finch", "fish", "fox", "frog", "goat", "hare", "hawk", "hen", "jay", "koi", "lark",
          "lion", "mole", "moth", "newt", "owl", "ox", "seal", "shark", "slug", "snail", "swan", "toad",
          "trout", "wolf")


def random_name() -> str:
    """A fresh name such as ``brave-owl-417`` (not guaranteed unique, as in MLflow)."""
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(0, 999)}"
