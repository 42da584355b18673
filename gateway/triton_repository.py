"""Loads and unloads versions of a model on every Triton endpoint, through Triton's model
repository API (explicit model control), and waits until each endpoint reports them ready.

A load sends the model's current configuration back with ``version_policy`` listing the
versions to keep and the ``serving_version`` / ``build_id`` parameters of the serving one
(the contract of model_repo/<model>/config.pbtxt): Triton loads the listed versions that are
not loaded, unloads the others, and keeps serving the loaded ones until the new configuration
is ready. The repository API is restricted: the gateway sends Triton's admin key
(``triton_admin_key``) as ``triton-grpc-protocol-admin-key``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence

import tritonclient.grpc.aio as triton_aio
from tritonclient.utils import InferenceServerException

from gateway.errors import BackendUnavailable, NotFound
from gateway.triton_model import BUILD_ID_PARAMETER, SERVING_VERSION_PARAMETER, version_build_id

# How often a load's versions are re-checked until every endpoint reports them ready.
READY_POLL_S = 0.1


class TritonRepository:
    def __init__(
        self, clients: Sequence[tuple[str, triton_aio.InferenceServerClient]], headers: dict[str, str] | None,
        timeout_s: float,
    ) -> None:
        """``clients``: (url, client) of every endpoint of every pool; ``headers``: the admin key's;
        ``timeout_s``: bound of one load and of the wait for readiness after it."""
        self._clients = list(clients)
        self._headers = headers
        self._timeout_s = timeout_s

    async def keep_versions(
        self, model: str, versions: Sequence[str], serving: str, dropped: Sequence[str] = ()
    ) -> None:
        """Loads exactly ``versions`` of ``model`` on every endpoint (``serving`` first among them)
        and returns once every endpoint reports each of them ready, and ``dropped`` (versions
        this load unloads) ready nowhere. NotFound when a version cannot be loaded (not in the
        repository, or its model failed to initialise); BackendUnavailable when an endpoint
        cannot be reached."""
        for version in versions:
            if not version.isdigit():
                raise NotFound(f"version {version!r} of {model!r}: versions are numbers")
        await asyncio.gather(*(self._load(url, client, model, versions, serving) for url, client in self._clients))
        await self._wait_ready(model, versions)
        await self._wait_unloaded(model, dropped)

    async def ready_everywhere(self, model: str, versions: Sequence[str]) -> bool:
        return not await self._not_ready(model, versions)

    async def _load(
        self, url: str, client: triton_aio.InferenceServerClient, model: str, versions: Sequence[str], serving: str
    ) -> None:
        try:
            current = await client.get_model_config(model, as_json=True, client_timeout=self._timeout_s)
        except InferenceServerException as error:
            raise BackendUnavailable(f"Triton at {url}: cannot read the configuration of {model!r}: {error.message()}") from None
        config = current["config"]
        parameters = dict(config.get("parameters", {}))
        parameters[SERVING_VERSION_PARAMETER] = {"string_value": serving}
        serving_build = version_build_id(parameters, serving)
        if serving_build:
            parameters[BUILD_ID_PARAMETER] = {"string_value": serving_build}
        config["parameters"] = parameters
        config["version_policy"] = {"specific": {"versions": [int(version) for version in versions]}}
        try:
            await client.load_model(
                model, headers=self._headers, config=json.dumps(config), client_timeout=self._timeout_s
            )
        except InferenceServerException as error:
            raise NotFound(
                f"Triton at {url} could not load versions {', '.join(versions)} of {model!r}: {error.message()}"
            ) from None

    async def _wait_ready(self, model: str, versions: Sequence[str]) -> None:
        """A load returns once Triton has tried it: a version it does not list is not there."""
        absent = await self._absent(model, versions)
        if absent:
            raise NotFound(f"not in Triton's model repository (or failed to load): {'; '.join(absent)}")
        deadline = time.monotonic() + self._timeout_s
        while True:
            missing = await self._not_ready(model, versions)
            if not missing:
                return
            if time.monotonic() >= deadline:
                raise NotFound(
                    f"not ready within {self._timeout_s:g}s after the load: {'; '.join(missing)} "
                    "(is the version in the model repository, and does its model initialise?)"
                )
            await asyncio.sleep(READY_POLL_S)

    async def _wait_unloaded(self, model: str, versions: Sequence[str]) -> None:
        deadline = time.monotonic() + self._timeout_s
        while versions:
            still = await self._not_ready(model, versions)
            if len(still) == len(versions) * len(self._clients):
                return
            if time.monotonic() >= deadline:
                raise BackendUnavailable(f"versions {', '.join(versions)} of {model!r} still ready after {self._timeout_s:g}s")
            await asyncio.sleep(READY_POLL_S)

    async def _absent(self, model: str, versions: Sequence[str]) -> list[str]:
        absent = []
        for url, client in self._clients:
            try:
                metadata = await client.get_model_metadata(model, as_json=True, client_timeout=self._timeout_s)
            except InferenceServerException as error:
                raise BackendUnavailable(f"Triton at {url}: cannot read {model!r}: {error.message()}") from None
            listed = set(metadata.get("versions") or ())
            absent += [f"version {version} of {model!r} on {url}" for version in versions if version not in listed]
        return absent

    async def _not_ready(self, model: str, versions: Sequence[str]) -> list[str]:
        async def ready(client: triton_aio.InferenceServerClient, version: str) -> bool:
            try:
                return bool(await client.is_model_ready(model, version, client_timeout=self._timeout_s))
            except InferenceServerException:
                return False

        checks = [(url, version) for url, _ in self._clients for version in versions]
        results = await asyncio.gather(*(ready(client, version) for _, client in self._clients for version in versions))
        return [f"version {version} on {url}" for (url, version), ok in zip(checks, results) if not ok]
