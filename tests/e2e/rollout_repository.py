"""A temporary versioned model repository for the rollout tests (the contract of issue 18):
``recommender/1`` the project's build, ``2`` a copy of it with its own build id, ``3`` a copy
whose model fails every call (a candidate broken at run time). The config lists versions 1
and 2 (``version_policy``), names each version's build (``build_id.<N>``) and version 1 as
the serving one.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

MODEL = "recommender"
SERVING, GOOD_CANDIDATE, BROKEN_CANDIDATE = "1", "2", "3"
BUILD_IDS = {SERVING: "", GOOD_CANDIDATE: "rollout-test-v2", BROKEN_CANDIDATE: "rollout-test-v3"}
BROKEN_MESSAGE = "broken candidate: every call fails (rollout test)"
# model.py of the versions before issue 18 reads only the plain build_id: each copy reads its own.
_PLAIN_BUILD_ID = 'self.build_id = params.get("build_id", "")'
_OWN_BUILD_ID = 'self.build_id = params.get(f"build_id.{args[\'model_version\']}") or params.get("build_id", "")'
_EXECUTE = "    def execute(self, requests: list) -> list:\n"


def build_versioned_repository(source: Path, target: Path) -> dict[str, str]:
    """Writes the repository under ``target`` from the built ``source`` repository (its
    ``recommender``); returns version -> build id."""
    source_model, model_dir = source / MODEL, target / MODEL
    model_dir.mkdir(parents=True)
    config = (source_model / "config.pbtxt").read_text()
    serving_build = re.search(r'key: "build_id"\s*value \{ string_value: "([^"]*)" \}', config)
    assert serving_build, "the built recommender's config.pbtxt names no build_id"
    builds = {**BUILD_IDS, SERVING: serving_build.group(1)}
    for version, build_id in builds.items():
        version_dir = model_dir / version
        shutil.copytree(source_model / "1", version_dir, ignore=shutil.ignore_patterns("__pycache__"))
        manifest_path = version_dir / "artifacts" / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest_path.write_text(json.dumps({**manifest, "build_id": build_id}, indent=2))
        code = (version_dir / "model.py").read_text().replace(_PLAIN_BUILD_ID, _OWN_BUILD_ID)
        if version == BROKEN_CANDIDATE:
            code = code.replace(_EXECUTE, _EXECUTE + f"        raise pb_utils.TritonModelException({BROKEN_MESSAGE!r})\n", 1)
        (version_dir / "model.py").write_text(code)
    parameters = "".join(
        f'  {{\n    key: "build_id.{version}"\n    value {{ string_value: "{build_id}" }}\n  }},\n'
        for version, build_id in builds.items()
    )
    parameters += f'  {{\n    key: "serving_version"\n    value {{ string_value: "{SERVING}" }}\n  }},\n'
    config = config.replace("parameters [\n", "parameters [\n" + parameters, 1)
    config += f"version_policy: {{ specific: {{ versions: [ {SERVING}, {GOOD_CANDIDATE} ] }} }}\n"
    (model_dir / "config.pbtxt").write_text(config)
    return builds
