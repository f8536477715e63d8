"""What both handlers (and the local run) build from Settings: the state table and the identity resolver.

Nothing here calls AWS when it is built; the state table's client and the Dodo API key are fetched
on first use, and the key only on the rare path that must look a customer up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dodo_cio.configuration.settings import SecretStore, Settings
from dodo_cio.platform.env import ConfigError
from dodo_cio.state.dodo_api import DodoApi
from dodo_cio.state.identity import Resolver
from dodo_cio.state.table import StateTable, ident_attribute


class DodoApiFactory:
    """The Dodo API client, or None while no `dodo-api-key` is stored; rebuilt when the key changes."""

    def __init__(self, settings: Settings, secrets: SecretStore) -> None:
        self._settings = settings
        self._secrets = secrets
        self._api: DodoApi | None = None
        self._key: str | None = None

    def __call__(self) -> DodoApi | None:
        try:
            key = self._secrets.dodo_api_key()
        except ConfigError:
            return None
        if not key:
            return None
        if self._api is None or key != self._key:
            if self._api is not None:
                self._api.close()
            try:
                self._api = DodoApi(self._settings.dodo_api_url, key)
            except ValueError:
                return None
            self._key = key
        return self._api


def state_table(settings: Settings, client_factory: Callable[[], Any]) -> StateTable | None:
    if not settings.state_table:
        return None
    return StateTable(
        settings.state_table,
        client_factory,
        ident=ident_attribute(settings.identifier.text),
        receipt_days=settings.receipt_days,
    )


def resolver(settings: Settings, secrets: SecretStore, state: StateTable | None) -> Resolver:
    return Resolver(settings.identifier, state, DodoApiFactory(settings, secrets))
