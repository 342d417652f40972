"""Member data protection (issue 17, part 1): minimal personal data and pseudonymised ids.

A members file that carries names, e-mails, phones, addresses, birthdays and id-card numbers
goes through ``recsys train`` (MLflow on), ``recsys export`` and ``recsys campaign export``;
then every file written under the run's directories (artifact, MLflow, exports, quarantine,
event store, the commands' output) is searched, decoded where it is Parquet, NumPy or gzip, for
each planted value: none may be there. A training with ``--pseudonymise-members`` may leave no
raw member id anywhere, and a server given the key answers the storefront's raw ids and stores
only pseudonyms; without the key, or with another, the artifact is refused.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from features import columns as col
from features.errors import ConfigError
from features.personal_columns import looks_personal
from features.pseudonyms import KEY_VARIABLE, PSEUDONYM, MemberPseudonyms, is_pseudonym
from features.synthetic import generate_store
from features.validate import load_members
from serving.artifact_sources import DirectorySource
from serving.event_store import EVENTS, SERVED
from serving.model_store import ModelStore
from serving.settings import Settings, VariantConfig
from tests.cli import run_recsys
from tests.serving_helpers import (
    TINY_STORE,
    WRITE,
    Server,
    an_event,
    copy_artifact,
    edit_manifest,
    recsys_serve,
)
from training.artifact import ArtifactError

KEY = "a-test-key-that-is-long-enough-0123456789"
OTHER_KEY = "another-test-key-also-long-enough-987654"
#: Every raw member id of the pseudonymisation tests starts so: a leak is a byte search away.
RAW_PREFIX = "rawid-"

#: Personal columns planted in the members file: column -> (a part of every value, the value
#: of member number i). The shared part is what the files are searched for: it finds a leak
#: of any row, whatever the row.
PLANTED = {
    "first_name": ("Zqxalice", lambda i: f"Zqxalice{i}"),
    "Email": ("planted-mail.example", lambda i: f"member{i}@planted-mail.example"),
    "phone": ("+44 7700 9", lambda i: f"+44 7700 9{i:05d}"),
    "home_address": ("Quillfeather Lane", lambda i: f"{i} Quillfeather Lane, Ashford"),
    "birthday": ("1907-03-", lambda i: f"1907-03-{i % 28 + 1:02d}"),
    "id_card_no": ("IDC-7Q", lambda i: f"IDC-7Q{i:06d}"),
    "姓名": ("测试姓名", lambda i: f"测试姓名{i}"),
    # Not personal, but not read either: dropped as unused, its values no more written.
    "favourite_colour": ("chartreuse-planted", lambda i: f"chartreuse-planted-{i}"),
}
PERSONAL = [name for name in PLANTED if name != "favourite_colour"]


# -- helpers -------------------------------------------------------------------------------------


def _texts(path: Path) -> Iterator[bytes]:
    """The bytes of ``path``, and its decoded contents where the bytes hide text: Parquet
    (compressed pages), NumPy arrays of strings (UTF-32), .npz and gzip members."""
    data = path.read_bytes()
    yield data
    name = path.name
    try:
        if name.endswith(".parquet"):
            rows = pl.read_parquet(io.BytesIO(data)).to_dicts()
            yield json.dumps(rows, default=str, ensure_ascii=False).encode()
        elif name.endswith(".npy"):
            yield _array_text(np.load(io.BytesIO(data), allow_pickle=False))
        elif name.endswith(".npz"):
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                yield from (_array_text(arrays[key]) for key in arrays.files)
        elif name.endswith(".gz"):
            yield gzip.decompress(data)
    except (OSError, ValueError, pl.exceptions.PolarsError):
        pass  # not what its name says: the raw bytes were searched


def _array_text(array: np.ndarray) -> bytes:
    return "\n".join(map(str, array.ravel().tolist())).encode() if array.dtype.kind in "US" else b""


def _needles(values: Iterable[str]) -> list[bytes]:
    """Each value as UTF-8 and as JSON writes it (non-ASCII escaped)."""
    return sorted({form for v in values for form in (v.encode(), json.dumps(v)[1:-1].encode())})


def leaks(roots: Iterable[Path], values: Iterable[str]) -> dict[str, list[str]]:
    """Files under ``roots`` (directories, or files themselves) holding any of ``values``,
    with the values found."""
    needles = _needles(values)
    found: dict[str, list[str]] = {}
    for root in roots:
        assert root.exists(), root
        for path in [root] if root.is_file() else sorted(root.rglob("*")):
            if not path.is_file():
                continue
            hits = {n.decode() for text in _texts(path) for n in needles if n in text}
            if hits:
                found[str(path)] = sorted(hits)
    return found


def _written(root: Path, inputs: set[str]) -> list[Path]:
    """Everything under ``root`` but the ``inputs``: what the commands wrote, which includes
    at least a model artifact, an MLflow store, exports, an event store and the logs."""
    written = [path for path in root.iterdir() if path.name not in inputs]
    for name in ("artifact", "mlflow", "exports", "logs", "events.db"):
        path = root / name
        assert path.is_file() or any(found.is_file() for found in path.rglob("*")), path
    return written


@contextmanager
def _environment(**variables: str | None) -> Iterator[None]:
    """``os.environ`` with ``variables`` set (None: unset), for the commands run meanwhile."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in variables.items():
            if value is None:
                patch.delenv(name, raising=False)
            else:
                patch.setenv(name, value)
        yield


def _logged(root: Path, name: str, *args: str | Path) -> str:
    """Run ``recsys``, keep its stdout and stderr under ``root / "logs"``, require success."""
    result = run_recsys(*args)
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    (logs / f"{name}.out").write_text(result.stdout)
    (logs / f"{name}.err").write_text(result.stderr)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _members_with_personal_columns(members: pl.DataFrame) -> pl.DataFrame:
    """The generated members with every :data:`PLANTED` column beside theirs."""
    numbers = range(members.height)
    planted = {name: [value(i) for i in numbers] for name, (_, value) in PLANTED.items()}
    return members.with_columns(pl.Series(name, values) for name, values in planted.items())


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.cast({name: pl.Utf8 for name in frame.columns})


def _export_both(root: Path, artifact: Path, events: str, *campaign_options: str | Path) -> str:
    """``recsys export`` of every member and a ``recsys campaign export``, into ``root /
    "exports"``; the campaign's summary."""
    exports = root / "exports"
    _logged(root, "export", "export", "--artifact", artifact, "--out", exports / "all.csv")
    return _logged(
        root, "campaign", "campaign", "export", "--campaign", "win-back", "--artifact",
        artifact, "--out", exports / "campaign.parquet", "--events-url", events, "-n", "3",
        *campaign_options,
    )  # fmt: skip


def _train_args(store: Path, members: Path, out: Path, tracking: Path) -> list[str | Path]:
    return [
        "train", "-i", store / "interactions.parquet", "--items", store / "items.parquet",
        "--members", members, "--models", "popular,item_knn", "--trials", "1",
        "--split", "last-days:60", "--out", out, "--list-depth", "5",
        "--tracking-uri", f"sqlite:///{tracking / 'mlflow.db'}", "--registered-model", "pd",
    ]  # fmt: skip


# -- minimal personal data -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["first_name", "LastName", "E-Mail", "PhoneNumber", "tel", "home_address", "City", "zip",
     "DateOfBirth", "dob", "IDCard", "national_id", "SSN", "passport_no",
     "姓名", "手机号", "地址", "生日", "身份证号", "邮箱"],
)  # fmt: skip
def test_personal_column_names_are_recognised(name: str) -> None:
    assert looks_personal(name)


@pytest.mark.parametrize(
    "name", ["member_id", "joined_at", "tier", "region", "loyalty_points", "hotel", "ethnicity"]
)
def test_other_column_names_are_not_taken_for_personal_data(name: str) -> None:
    assert not looks_personal(name)


def test_the_members_loader_keeps_only_what_the_product_reads(tmp_path: Path) -> None:
    frame = pl.DataFrame({
        "member_id": ["m1", "m2", "m3"], "joined_at": ["2024-01-01", "someday", "2024-02-01"],
        "tier": ["gold", "silver", "gold"], "DateOfBirth": ["1990-05-01", "1980-01-01", ""],
        "Email": ["a@planted-mail.example", "b@planted-mail.example", "c@planted-mail.example"],
        "favourite_colour": ["red", "blue", "green"],
    })  # fmt: skip
    source = tmp_path / "members.csv"
    frame.write_csv(source)
    quarantine = tmp_path / "quarantine.csv"
    loaded = load_members(
        source, {col.BIRTH_DATE: "DateOfBirth"}, max_bad_share=1.0, quarantine_path=quarantine
    )
    assert loaded.frame.columns == [col.MEMBER_ID, col.JOINED_AT, col.TIER, col.BIRTH_DATE]
    assert loaded.report.dropped_personal == ["Email"]
    assert loaded.report.dropped_unused == ["favourite_colour"]
    assert loaded.report.to_dict()["dropped_personal"] == ["Email"]
    # The quarantined row keeps the file's names, but only of the columns that were read.
    rejected = pl.read_csv(quarantine, infer_schema=False)
    assert rejected.columns == ["_row", "_reason", "member_id", "joined_at", "tier", "DateOfBirth"]
    assert not leaks([tmp_path / "quarantine.csv"], ["planted-mail", "blue"])


@pytest.fixture(scope="module")
def personal_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store whose members file carries personal columns, trained (MLflow on) and exported;
    everything the product wrote lies under the returned directory."""
    root = tmp_path_factory.mktemp("personal")
    store = root / "store"
    generate_store(TINY_STORE, store)
    members = _members_with_personal_columns(pl.read_parquet(store / "members.parquet"))
    # One row that does not validate: it goes to the quarantine file, personal columns and all
    # as far as the file is concerned.
    broken = members.head(1).with_columns(
        pl.lit("X-BROKEN").alias(col.MEMBER_ID), pl.lit("someday").alias(col.JOINED_AT)
    )
    members_file = store / "members.csv"
    pl.concat([_as_text(members), _as_text(broken)]).write_csv(members_file)
    artifact, events = root / "artifact", f"sqlite:///{root / 'events.db'}"
    (root / "mlflow").mkdir()
    with _environment(RECSYS_DATA_DIR=str(root / "data")):
        _logged(root, "train", *_train_args(store, members_file, artifact, root / "mlflow"))
        _export_both(root, artifact, events)
    return root


def test_personal_columns_reach_no_file_the_product_writes(personal_run: Path) -> None:
    written = _written(personal_run, inputs={"store"})
    assert (personal_run / "data" / "quarantine" / "members.quarantine.csv").exists()
    needles = [needle for needle, _ in PLANTED.values()]
    assert leaks(written, needles) == {}
    # The planted values are there to be found: the search finds every one in the input.
    source = personal_run / "store" / "members.csv"
    assert set(needles) <= set(leaks([source], needles)[str(source)])


def test_the_dropped_columns_are_reported_by_name(personal_run: Path) -> None:
    metrics = json.loads((personal_run / "artifact" / "metrics.json").read_text())
    report = metrics["inputs"]["members"]
    assert report["dropped_personal"] == PERSONAL
    assert report["dropped_unused"] == ["favourite_colour"]
    printed = " ".join((personal_run / "logs" / "train.out").read_text().split())
    assert f"Columns dropped unread (personal data): {', '.join(PERSONAL)}" in printed
    assert "Columns dropped unread (unused): favourite_colour" in printed


def test_a_members_file_over_the_bad_share_cap_stops_without_showing_personal_values(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    generate_store(TINY_STORE, store)
    members = _members_with_personal_columns(pl.read_parquet(store / "members.parquet"))
    members = members.cast({c: pl.Utf8 for c in members.columns}).with_columns(
        pl.lit("someday").alias(col.JOINED_AT)
    )
    members.write_csv(store / "members.csv")
    result = run_recsys(
        *_train_args(store, store / "members.csv", tmp_path / "artifact", tmp_path), "--no-mlflow"
    )
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "column 'joined_at', unparseable joined_at" in message and "members.csv" in message
    needles = [needle for needle, _ in PLANTED.values()]
    assert not any(needle in result.stdout + result.stderr for needle in needles)
    assert leaks([tmp_path / "data"], needles) == {}
    assert (tmp_path / "data" / "quarantine" / "members.quarantine.csv").exists()


# -- pseudonymised member ids ---------------------------------------------------------------------


def test_pseudonyms_are_keyed_stable_and_not_hashed_twice() -> None:
    pseudonyms = MemberPseudonyms(KEY)
    pseudonym = pseudonyms.of("M001")
    assert is_pseudonym(pseudonym) and len(pseudonym) == 34 and pseudonym.startswith("p_")
    assert pseudonyms.of("M001") == pseudonym != pseudonyms.of("M002")
    assert MemberPseudonyms(OTHER_KEY).of("M001") != pseudonym
    assert pseudonyms.of(pseudonym) == pseudonym  # already a pseudonym: kept
    assert KEY not in repr(pseudonyms) and pseudonyms.fingerprint in repr(pseudonyms)
    assert pseudonyms.fingerprint != MemberPseudonyms(OTHER_KEY).fingerprint
    frame = pl.DataFrame({col.MEMBER_ID: ["M001", "M002", "M001", None]})
    assert pseudonyms.in_column(frame)[col.MEMBER_ID].to_list() == [
        pseudonym, pseudonyms.of("M002"), pseudonym, None
    ]  # fmt: skip
    with pytest.raises(ConfigError, match=f"{KEY_VARIABLE} is 5 characters long"):
        MemberPseudonyms("short")


def test_the_server_refuses_a_short_key_at_start_up() -> None:
    with pytest.raises(ValidationError, match="at least 16"):
        Settings(member_id_key="short")
    assert Settings(member_id_key="").member_pseudonyms() is None
    assert Settings(member_id_key=KEY).member_pseudonyms().fingerprint == (  # type: ignore[union-attr]
        MemberPseudonyms(KEY).fingerprint
    )


@pytest.fixture(scope="module")
def pseudonymised(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A store whose member ids all start with :data:`RAW_PREFIX`, trained with
    ``--pseudonymise-members`` (MLflow on) and exported, opt-outs given as raw ids."""
    root = tmp_path_factory.mktemp("pseudonymised")
    generated, store = root / "generated", root / "store"
    generate_store(TINY_STORE, generated)
    store.mkdir()
    raw = pl.concat_str(pl.lit(RAW_PREFIX), pl.col(col.MEMBER_ID)).alias(col.MEMBER_ID)
    for name in ("interactions.parquet", "members.parquet"):
        pl.read_parquet(generated / name).with_columns(raw).write_parquet(store / name)
    (store / "items.parquet").write_bytes((generated / "items.parquet").read_bytes())
    optouts = root / "optouts.txt"
    optouts.write_text(f"{RAW_PREFIX}M001\n{RAW_PREFIX}M002\n")
    artifact, events = root / "artifact", f"sqlite:///{root / 'events.db'}"
    (root / "mlflow").mkdir()
    with _environment(RECSYS_DATA_DIR=str(root / "data"), **{KEY_VARIABLE: KEY}):
        members = store / "members.parquet"
        _logged(
            root, "train", *_train_args(store, members, artifact, root / "mlflow"),
            "--pseudonymise-members",
        )  # fmt: skip
        campaign = _export_both(root, artifact, events, "--suppress", optouts, "--holdout", "0")
        (root / "logs" / "campaign.summary").write_text(campaign)
    return {"root": root, "store": store, "artifact": artifact}


def test_a_pseudonymised_training_leaves_no_raw_member_id(pseudonymised: dict[str, Path]) -> None:
    root = pseudonymised["root"]
    written = _written(root, inputs={"generated", "store", "optouts.txt"})
    assert leaks(written, [RAW_PREFIX]) == {}
    manifest = json.loads((pseudonymised["artifact"] / "manifest.json").read_text())
    fingerprint = MemberPseudonyms(KEY).fingerprint
    assert manifest["member_ids"] == {"pseudonymised": True, "key_fingerprint": fingerprint}
    assert KEY not in (pseudonymised["artifact"] / "manifest.json").read_text()
    exported = pl.read_csv(root / "exports" / "all.csv")
    assert exported[col.MEMBER_ID].map_elements(is_pseudonym, return_dtype=pl.Boolean).all()


def test_raw_opt_outs_suppress_their_pseudonymised_members(pseudonymised: dict[str, Path]) -> None:
    summary = " ".join((pseudonymised["root"] / "logs" / "campaign.summary").read_text().split())
    assert "2 suppressed" in summary


def test_the_retailer_maps_pseudonyms_back_to_their_members(
    pseudonymised: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "map.csv"
    args = ("pseudonymise", "--members", pseudonymised["store"] / "members.parquet", "--out", out)
    with _environment(**{KEY_VARIABLE: KEY}):
        done = run_recsys(*args)
    assert done.returncode == 0, done.stderr
    assert MemberPseudonyms(KEY).fingerprint in done.stdout
    mapping = pl.read_csv(out)
    assert mapping.columns == [col.MEMBER_ID, PSEUDONYM]
    exported = set(pl.read_csv(pseudonymised["root"] / "exports" / "all.csv")[col.MEMBER_ID])
    assert exported <= set(mapping[PSEUDONYM])
    assert mapping[col.MEMBER_ID].str.starts_with(RAW_PREFIX).all()
    with _environment(**{KEY_VARIABLE: None}):
        refused = run_recsys(*args)
    assert refused.returncode == 2 and f"set {KEY_VARIABLE}" in refused.stderr


def test_commands_take_raw_ids_for_a_pseudonymised_artifact_only_with_its_key(
    pseudonymised: dict[str, Path],
) -> None:
    args = ("recommend", "--artifact", pseudonymised["artifact"], "--member", f"{RAW_PREFIX}M001")
    with _environment(**{KEY_VARIABLE: KEY}):
        answer = run_recsys(*args, "--json")
    assert answer.returncode == 0, answer.stderr
    listed = json.loads(answer.stdout)
    assert listed["member_id"] == MemberPseudonyms(KEY).of(f"{RAW_PREFIX}M001")
    assert not listed["fallback"]  # a member the artifact knows
    for key, message in [(None, f"{KEY_VARIABLE} is not set"), (OTHER_KEY, "another key")]:
        with _environment(**{KEY_VARIABLE: key}):
            refused = run_recsys(*args)
        assert refused.returncode == 2 and message in " ".join(refused.stderr.split())


def test_pseudonymising_without_a_key_is_refused_before_loading(tmp_path: Path) -> None:
    with _environment(**{KEY_VARIABLE: None}):
        result = run_recsys(
            "train", "-i", tmp_path / "absent.parquet", "--out", tmp_path / "artifact",
            "--pseudonymise-members", "--no-mlflow",
        )  # fmt: skip
    assert result.returncode == 2
    assert f"--pseudonymise-members needs the member id key: set {KEY_VARIABLE}" in " ".join(
        result.stderr.split()
    )


def test_the_server_with_the_key_answers_raw_ids_and_stores_only_pseudonyms(
    pseudonymised: dict[str, Path], tmp_path: Path
) -> None:
    pseudonyms = MemberPseudonyms(KEY)
    member, item = f"{RAW_PREFIX}M003", "I001"
    served = copy_artifact(pseudonymised["artifact"], tmp_path / "artifact")
    settings = {
        "RECSYS_ARTIFACT": str(served),
        "RECSYS_EVENTS_URL": f"sqlite:///{tmp_path / 'events.db'}",
        KEY_VARIABLE: KEY,
    }
    # With the access log on: it names each request's path, as the server saw it.
    server = Server(settings, tmp_path / "server.log", command=recsys_serve("--access-log"))
    server.wait()
    try:
        for path in ("recommendations", "profile", "buy-again", "bundles"):
            response = server.client.get(f"/v1/members/{member}/{path}")
            assert response.status_code == 200, (path, response.text)
            assert response.json()["member_id"] == pseudonyms.of(member)
        assert not server.client.get(f"/v1/members/{member}/recommendations").json()["fallback"]
        # The dashboard lists pseudonyms and asks by them: they are not hashed again.
        again = server.client.get(f"/v1/members/{pseudonyms.of(member)}/profile")
        assert again.status_code == 200 and again.json()["member_id"] == pseudonyms.of(member)
        found = server.client.get("/v1/dashboard/members", params={"q": member}).json()
        assert [row["member_id"] for row in found["members"]] == [pseudonyms.of(member)]
        batch = server.client.post(
            "/v1/recommendations/batch", json={"member_ids": [member, f"{RAW_PREFIX}M004"]}
        )
        assert batch.status_code == 200, batch.text
        assert [r["member_id"] for r in batch.json()["results"]] == pseudonyms.of_all(
            [member, f"{RAW_PREFIX}M004"]
        )
        posted = server.client.post(
            "/v1/events", json=[an_event("purchase", member, item)], headers=WRITE
        )
        assert posted.status_code == 200 and posted.json()["stored"] == 1, posted.text
        # The purchase counts at once for the member the raw id names.
        listed = server.client.get(f"/v1/members/{member}/recommendations", params={"n": 50})
        assert item not in [entry["item_id"] for entry in listed.json()["items"]]
    finally:
        server.stop()
    with sqlite3.connect(tmp_path / "events.db") as db:
        stored = [row[0] for row in db.execute(f"SELECT member_id FROM {EVENTS.name}")]
        served = {row[0] for row in db.execute(f"SELECT member_id FROM {SERVED.name}")}
    assert stored == [pseudonyms.of(member)]
    assert served == set(pseudonyms.of_all([member, f"{RAW_PREFIX}M004"]))  # the impressions
    assert leaks([tmp_path / "events.db"], [RAW_PREFIX]) == {}
    # The access log names the pseudonym of every member path; a raw id only where the
    # dashboard's search text was one (a search is for what the user typed).
    logged = (tmp_path / "server.log").read_text().splitlines()
    assert any(f"/v1/members/{pseudonyms.of(member)}/recommendations" in line for line in logged)
    assert [
        line for line in logged if RAW_PREFIX in line and "/dashboard/members?q=" not in line
    ] == []


def _reload(artifact: Path, key: str | None) -> None:
    """Load ``artifact`` into a model store holding ``key``'s fingerprint (None: no key)."""
    store = ModelStore(
        {"default": VariantConfig(source=str(artifact))},
        {"default": DirectorySource(artifact)},
        member_key=MemberPseudonyms(key).fingerprint if key else None,
    )
    asyncio.run(store.reload())


def test_an_artifact_whose_ids_do_not_match_the_key_is_refused(
    pseudonymised: dict[str, Path], tmp_path: Path
) -> None:
    artifact = pseudonymised["artifact"]
    _reload(artifact, KEY)
    recorded = MemberPseudonyms(KEY).fingerprint
    for key, message in [
        (None, f"pseudonyms (key fingerprint {recorded}) but {KEY_VARIABLE} is not set"),
        (OTHER_KEY, f"pseudonyms of another key (fingerprint {recorded};"),
    ]:
        with pytest.raises(ArtifactError, match=re.escape(message)):
            _reload(artifact, key)
    raw = copy_artifact(artifact, tmp_path / "raw")
    edit_manifest(raw, member_ids=None)  # as written before pseudonyms existed: raw ids
    _reload(raw, None)
    with pytest.raises(ArtifactError, match=f"its member ids are raw but {KEY_VARIABLE} is set"):
        _reload(raw, KEY)
