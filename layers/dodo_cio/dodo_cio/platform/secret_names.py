"""Which field names hold a credential or card data: such a field is never forwarded to Customer.io.

A name is split into words on `_`, `-`, `.`, spaces and camelCase (`apiKey` -> api, key). It is a
secret when its LAST word is a secret word (`stripe_secret`, `reset_token`, `X-Api-Key`, `pan`),
or its last two words are a secret pair (`card_number`), optionally followed by one word that only
says how the secret is stored (`password_hash`, `api_key_value`). A secret word elsewhere in the
name names something else: `secret_santa`, `tokens_purchased`, `key_count`, `keyboard`, `monkey`
and `license_key_id` are forwarded. Matching whole words, not substrings, is the point: a
substring rule dropped merchants' ordinary fields and still needed a list of exceptions.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

# `key` on its own is a credential (api_key, private_key, license_key); the fused compounds are
# written without a separator, which the word split cannot see.
_SECRET_WORDS: Final = frozenset(
    "secret secrets password passwords passwd passphrase pwd token tokens key keys cvv cvv2 cvc cvc2 pan "  # noqa: SIM905
    "apikey secretkey privatekey accesstoken refreshtoken authtoken clientsecret cardnumber".split()
)
_SECRET_PAIRS: Final = frozenset({("card", "number"), ("card", "num"), ("card", "no"), ("cc", "number"), ("cc", "num")})
_STORAGE_SUFFIXES: Final = frozenset(
    "value hash hashed digest plain plaintext raw encrypted enc b64 base64 hex str string confirm confirmation".split()  # noqa: SIM905
)
_WORD: Final = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z0-9]+|[A-Z0-9]+")


def name_words(name: str) -> list[str]:
    """`X-Api-Key` -> ["x", "api", "key"]; `APIKey` -> ["api", "key"]; `card_number` -> ["card", "number"]."""
    return [word.lower() for word in _WORD.findall(name)]


def is_secret_key(name: object) -> bool:
    """True for a field name that holds a credential or card data (rule above): never forwarded."""
    return _is_secret_name(str(name))


# Payloads repeat the same few hundred field names: each is split into words once per container, not
# once per webhook. Bounded, so a stream of new names cannot grow it.
@lru_cache(maxsize=2048)
def _is_secret_name(name: str) -> bool:
    words = name_words(name)
    if len(words) > 1 and words[-1] in _STORAGE_SUFFIXES:
        words = words[:-1]
    if not words:
        return False
    return words[-1] in _SECRET_WORDS or tuple(words[-2:]) in _SECRET_PAIRS
