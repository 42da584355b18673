"""A versioned copy of a model repository: ``recommender/1`` the built model and further numbered
versions copied from it, each with its own build id, in the layout of issue 18's contract
(``version_policy`` listing the kept versions, ``build_id.<N>`` per version, ``serving_version``).

For the rollout's tests and the demo's shadow step when the repository has no candidate of its
own: a copy answers exactly as the serving version does. A ``broken`` version fails every call
(a candidate that fails at run time). The other models are linked, not copied.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Collection, Mapping
from pathlib import Path

from pipeline.model_dir import ModelDir
from pipeline.version_store import load_record

MODEL = "recommender"
SERVING = "1"
BROKEN_MESSAGE = "broken candidate: every call fails"
_EXECUTE = "    def execute(self, requests: list) -> list:\n"
# What a versioned build's config already declares about its versions: replaced by the copy's own.
_VERSION_POLICY = re.compile(r"^version_policy: .*\n", re.M)
_VERSION_PARAMETER = re.compile(r'  \{\n    key: "(?:build_id\.\d+|serving_version)"\n    value \{ string_value: "[^"]*" \}\n  \},?\n')


def build_versioned_repository(
    source: Path, target: Path, candidates: Mapping[str, str], kept: Collection[str], broken: Collection[str] = ()
) -> dict[str, str]:
    """Writes ``target`` from the built ``source`` repository: ``recommender`` with version 1 and
    each of ``candidates`` (version -> build id), ``kept`` the versions its config loads;
    returns version -> build id."""
    source_model, model_dir = source / MODEL, target / MODEL
    model_dir.mkdir(parents=True)
    for other in source.iterdir():
        if other.name != MODEL and other.is_dir():
            (target / other.name).symlink_to(other.resolve(), target_is_directory=True)
    built = load_record(ModelDir(source, MODEL))  # the pipeline's record of the source's versions
    builds = {SERVING: built.serving_build_id, **candidates}
    source_version = source_model / str(built.serving)
    for version, build_id in builds.items():
        version_dir = model_dir / version
        shutil.copytree(source_version, version_dir, ignore=shutil.ignore_patterns("__pycache__"))
        manifest_path = version_dir / "artifacts" / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest_path.write_text(json.dumps({**manifest, "build_id": build_id}, indent=2))
        code = (version_dir / "model.py").read_text()  # it checks its manifest against build_id.<N>
        if version in broken:
            code = code.replace(_EXECUTE, _EXECUTE + f"        raise pb_utils.TritonModelException({BROKEN_MESSAGE!r})\n", 1)
        (version_dir / "model.py").write_text(code)
    parameters = "".join(
        f'  {{\n    key: "build_id.{version}"\n    value {{ string_value: "{build_id}" }}\n  }},\n'
        for version, build_id in builds.items()
    )
    parameters += f'  {{\n    key: "serving_version"\n    value {{ string_value: "{SERVING}" }}\n  }},\n'
    config = _VERSION_PARAMETER.sub("", _VERSION_POLICY.sub("", (source_model / "config.pbtxt").read_text()))
    config = config.replace("parameters [\n", "parameters [\n" + parameters, 1)
    config += f"version_policy: {{ specific: {{ versions: [ {', '.join(sorted(kept, key=int))} ] }} }}\n"
    (model_dir / "config.pbtxt").write_text(config)
    return builds
