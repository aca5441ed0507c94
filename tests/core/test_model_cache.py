"""Trained built-in models in a cache that may outlive the checkout (issue 20, item 6).

- Their keys hold the sha256 of the training code's source: a change to that code retrains.
- ``TRUSTLENS_MODEL_CACHE_DIR``, when set, is where they are read and written (CI keeps it between
  runs, see .ci/run), unless the caller passes a store of its own.
"""

from __future__ import annotations

import shutil

import pytest

from core import scenarios
from core import store as store_mod
from core.store import MODEL_CACHE_ENV_VAR, ArtifactStore, default_store, model_store, source_hash
from core.uncertainty import members
from core.uncertainty import sources


@pytest.fixture
def separate_caches(tmp_path, monkeypatch):
    """An empty per-run cache and an empty model cache, nothing loaded in memory: (cache, models) folders."""
    cache, models = tmp_path / "cache", tmp_path / "models"
    monkeypatch.setenv("TRUSTLENS_CACHE_DIR", str(cache))
    monkeypatch.setenv(MODEL_CACHE_ENV_VAR, str(models))
    scenarios.forget_loaded_models()
    members.forget_members()
    yield cache, models
    scenarios.forget_loaded_models()
    members.forget_members()


def pkl_files(folder) -> list:
    return sorted(folder.rglob("*.pkl")) if folder.exists() else []


# -- the training code's hash in the keys ---------------------------------------------------------
def test_source_hash_follows_the_files_content(tmp_path, monkeypatch):
    for name in ("core/nets.py", "core/scenarios.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(store_mod._ROOT / name, tmp_path / name)
    assert source_hash("core/nets.py", "core/scenarios.py") == source_hash("core/scenarios.py", "core/nets.py")
    assert source_hash("core/nets.py") != source_hash("core/scenarios.py")
    monkeypatch.setattr(store_mod, "_ROOT", tmp_path)
    store_mod._file_digest.cache_clear()
    try:
        before = source_hash("core/nets.py")
        with open(tmp_path / "core/nets.py", "a") as fh:
            fh.write("\n# an edit\n")
        store_mod._file_digest.cache_clear()
        assert source_hash("core/nets.py") != before
    finally:
        store_mod._file_digest.cache_clear()


def test_every_file_named_as_training_code_exists():
    for name in (*scenarios.TRAINING_CODE, *members.TRAINING_CODE, *sources.BAYES_CODE, *sources.AUTOENCODER_CODE):
        assert (store_mod._ROOT / name).is_file(), name


def test_model_keys_change_when_the_training_code_changes(monkeypatch):
    spec = scenarios.get_spec("digits")
    train = scenarios.load_data("digits")["train"]
    before = scenarios._train_key(spec, spec.model("cnn"), None, train)
    assert scenarios._train_key(spec, spec.model("cnn"), None, train) == before  # stable for the same code
    monkeypatch.setattr(scenarios, "training_code_hash", lambda: "0" * 64)
    assert scenarios._train_key(spec, spec.model("cnn"), None, train) != before


def test_every_trained_artifacts_key_changes_when_its_source_hash_changes(monkeypatch):
    spec = scenarios.get_spec("digits")
    train = scenarios.load_data("digits")["train"]

    def keys() -> list[str]:
        return [scenarios._train_key(spec, spec.model("cnn"), None, train),
                members.member_key("digits", "cnn", None, "deep", 0),
                sources._bayes_key("digits", None),
                sources._autoencoder_key("digits", None)[0]]

    before = keys()
    for module in (scenarios, members, sources):
        monkeypatch.setattr(module, "source_hash", lambda *names: "f" * 64)
    after = keys()
    assert all(a != b for a, b in zip(before, after)), (before, after)


def test_random_label_model_key_holds_the_training_code_hash(tmp_store, monkeypatch):
    first = scenarios.load_random_label_model("breast-cancer", "logreg", store=tmp_store)
    assert first.trained_now
    monkeypatch.setattr(scenarios, "training_code_hash", lambda: "0" * 64)
    again = scenarios.load_random_label_model("breast-cancer", "logreg", store=tmp_store)
    assert again.key != first.key and again.trained_now  # other code: trained again, not read


# -- TRUSTLENS_MODEL_CACHE_DIR ----------------------------------------------------------------------
def test_model_store_is_the_model_folder_unless_a_store_is_passed(separate_caches, tmp_path, monkeypatch):
    cache, models = separate_caches
    assert model_store().root == models
    assert model_store(default_store()).root == models  # the process's default store is no choice
    own = ArtifactStore(tmp_path / "own")
    assert model_store(own) is own
    monkeypatch.delenv(MODEL_CACHE_ENV_VAR)
    assert model_store() is default_store() and default_store().root == cache


def test_a_model_loaded_with_the_variable_set_lands_in_its_folder(separate_caches):
    cache, models = separate_caches
    loaded = scenarios.load_model("breast-cancer", "logreg")
    assert loaded.trained_now
    assert model_store().path_for(loaded.key) in pkl_files(models)
    assert not [p for p in pkl_files(cache) if p.stem == loaded.key]
    assert scenarios.is_trained("breast-cancer", "logreg")
    # a fresh process with the same folder reads it instead of training
    scenarios.forget_loaded_models()
    again = scenarios.load_model("breast-cancer", "logreg")
    assert not again.trained_now and again.adapter.fingerprint == loaded.adapter.fingerprint
    # so do its random-label twin and bagging members (scikit-learn: seconds)
    twin = scenarios.load_random_label_model("breast-cancer", "logreg")
    assert twin.trained_now and model_store().contains(twin.key) and not default_store().contains(twin.key)
    bag = members.ensemble_members("breast-cancer", "logreg", None, "bootstrap", 2)
    assert [m.trained_now for m in bag] == [True, True]
    assert members.members_trained("breast-cancer", "logreg", None, "bootstrap", 2)
    keys = {members.member_key("breast-cancer", "logreg", None, "bootstrap", i) for i in range(2)}
    assert keys <= {p.stem for p in pkl_files(models)} and not keys & {p.stem for p in pkl_files(cache)}


def test_a_store_passed_by_the_caller_keeps_training_into_it(separate_caches, tmp_path):
    cache, models = separate_caches
    own = ArtifactStore(tmp_path / "own")
    loaded = scenarios.load_model("breast-cancer", "logreg", store=own)
    assert loaded.trained_now and own.contains(loaded.key)
    assert pkl_files(models) == [] and pkl_files(cache) == []
    assert not scenarios.is_trained("breast-cancer", "logreg")  # not in the model folder


def test_an_unwritable_model_folder_names_the_variable(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(MODEL_CACHE_ENV_VAR, str(blocker / "models"))
    from core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=MODEL_CACHE_ENV_VAR):
        model_store()


def test_ci_keeps_the_model_folder_between_runs():
    ci = (store_mod._ROOT / ".ci" / "run").read_text().splitlines()
    line = 'export TRUSTLENS_MODEL_CACHE_DIR="${TRUSTLENS_MODEL_CACHE_DIR:-$HOME/.cache/trustlens-ci-models}"'
    assert line in ci
    readme_command = ("python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements-dev.txt "
                      "&& python -m pytest")
    assert ci.index(line) < ci.index(readme_command)  # set before the tests run
