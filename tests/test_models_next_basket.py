"""The next-basket models (top_personal, tifu_knn, user_knn) and their shared neighbour search:
the model contract, hand-computed TIFU vectors, exact against FAISS neighbours, strangers
scored from a history row, and memory-mapped save/load."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import optuna
import polars as pl
import pytest
import scipy.sparse as sp

from features import columns as col
from tests import model_contract
from tests.model_contract import RecommenderContract
from training.dataset import TrainingData, build_training_data
from training.index import IndexConfig
from training.models import neighbours as neighbours_module
from training.models.base import Recommender, popularity_tie_breaker
from training.models.neighbours import MemberNeighbours, NeighbourConfig
from training.models.tifu_knn import TIFUKNNRecommender
from training.models.top_personal import TopPersonalRecommender
from training.models.user_knn import UserKNNRecommender
from training.tune import SEARCH_SPACES, _as_trial_values

#: The contract's data set, shared with this module's own tests (pytest finds it by name).
two_group_data = model_contract.two_group_data

#: FAISS small enough for a test: HNSW even on a few hundred members, low build effort.
SMALL_FAISS = NeighbourConfig(
    exact_below=0,
    dimensions=32,
    oversample=5,
    index=IndexConfig(exact_below=0, hnsw_m=16, ef_construction=64, ef_search=64),
)

# -- the contract ---------------------------------------------------------------------------------


class TestUserKNNContract(RecommenderContract):
    def make_model(self) -> Recommender:
        return UserKNNRecommender(neighbors=5)


class TestUserKNNThroughFaissContract(RecommenderContract):
    def make_model(self) -> Recommender:
        return UserKNNRecommender(neighbors=5, exact_below=0)


class TestTIFUKNNContract(RecommenderContract):
    def make_model(self) -> Recommender:
        # Five neighbours of 40 members: the default 300 would average everyone, and the items
        # a member lacks would then come in global, not group, order.
        return TIFUKNNRecommender(neighbors=5, group_count=3)


class TestTopPersonalContract(RecommenderContract):
    """TopPersonal only re-ranks what the member bought: every item they have not bought
    scores 0, so with purchases excluded its lists are the tie breaker's (popularity), not
    the member's group, and it has no item similarity. Exclusions, ``n``, the allowed mask,
    padding and save/load are the contract's; what it promises instead is tested below."""

    personalised = False

    def make_model(self) -> Recommender:
        return TopPersonalRecommender()


# -- data of known shape --------------------------------------------------------------------------

START = datetime(2024, 1, 1)


def _orders(*orders: tuple[str, int, tuple[str, ...]]) -> pl.DataFrame:
    """Purchase rows from (member, day, items) orders; an item listed twice is two lines."""
    rows = [
        {
            col.MEMBER_ID: member,
            col.ITEM_ID: item,
            col.EVENT: col.PURCHASE,
            col.TIMESTAMP: START + timedelta(days=day),
            col.ORDER_ID: f"{member}-{day}",
            col.QUANTITY: 1.0 + line,
        }
        for member, day, items in orders
        for line, item in enumerate(items)
    ]
    return pl.DataFrame(rows)


@pytest.fixture(scope="module")
def toy() -> TrainingData:
    """Three members with 7, 2 and 3 orders: with 3 groups, a's split 2-2-3 (the larger group
    last), b has fewer orders than groups (one group each), c one order per group. ``x`` is
    on two lines of a's last order, which is one occasion."""
    return build_training_data(
        _orders(
            ("a", 0, ("x",)),
            ("a", 1, ("w",)),
            ("a", 2, ("w",)),
            ("a", 3, ("x",)),
            ("a", 4, ("w",)),
            ("a", 5, ("y",)),
            ("a", 6, ("x", "x")),
            ("b", 1, ("x",)),
            ("b", 2, ("z",)),
            ("c", 3, ("y",)),
            ("c", 4, ("y", "z")),
            ("c", 5, ("y",)),
        )
    )


def _by_name(data: TrainingData, matrix: np.ndarray | sp.csr_matrix) -> dict[str, dict[str, float]]:
    dense = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)
    members = data.member_ids.external_ids.tolist()
    items = data.item_ids.external_ids.tolist()
    return {
        member: {item: float(dense[m, i]) for i, item in enumerate(items) if dense[m, i]}
        for m, member in enumerate(members)
    }


def _hand_tifu_vectors() -> dict[str, dict[str, float]]:
    """The toy's vectors by the formulas, r_b = 0.9 and r_g = 0.7, with 3 groups."""
    rb, rg = 0.9, 0.7
    # a: groups [x, w], [w, x], [w, y, x]; within-group decays 0.9, 1 and 0.81, 0.9, 1.
    a_groups = (
        {"x": rb / 2, "w": 1 / 2},
        {"w": rb / 2, "x": 1 / 2},
        {"w": rb**2 / 3, "y": rb / 3, "x": 1 / 3},
    )
    a: dict[str, float] = {}
    for index, group in enumerate(a_groups):
        for item, value in group.items():
            a[item] = a.get(item, 0.0) + rg ** (2 - index) * value / 3
    # b: two orders, fewer than 3 groups: one group each, decayed over its 2 groups.
    b = {"x": rg / 2, "z": 1 / 2}
    # c: three orders, one per group.
    c = {"y": (rg**2 + rg + 1) / 3, "z": rg / 3}
    return {"a": a, "b": b, "c": c}


# -- tifu_knn -------------------------------------------------------------------------------------


def test_tifu_vectors_are_the_hand_computed_group_decayed_means(toy: TrainingData) -> None:
    model = TIFUKNNRecommender(within_decay=0.9, group_decay=0.7, group_count=3).fit(toy)
    got = _by_name(toy, model.vectors)
    expected = _hand_tifu_vectors()
    assert got.keys() == expected.keys()
    for member, vector in expected.items():
        assert got[member].keys() == vector.keys(), member
        for item, value in vector.items():
            assert got[member][item] == pytest.approx(value, abs=1e-6), (member, item)


def test_tifu_blends_each_vector_with_the_mean_of_its_nearest_other_members(
    toy: TrainingData,
) -> None:
    # As in the authors' code, a member is not their own neighbour: with one neighbour, each
    # member's is the nearest of the two others.
    model = TIFUKNNRecommender(neighbors=1, alpha=0.7, group_count=3).fit(toy)
    members = np.arange(toy.n_members)
    vectors = model.vectors.toarray().astype(np.float64)
    distances = ((vectors[:, None, :] - vectors[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(distances, np.inf)
    nearest = np.argsort(distances, axis=1, kind="stable")[:, 0]
    expected = 0.7 * vectors + 0.3 * vectors[nearest]
    np.testing.assert_allclose(model.score(members, toy.matrix), expected, atol=1e-6)


def test_tifu_scores_a_stranger_as_one_basket_of_its_history(toy: TrainingData) -> None:
    model = TIFUKNNRecommender(neighbors=2, alpha=0.6, group_count=3).fit(toy)
    history = sp.csr_matrix(toy.matrix[[toy.member_ids.index_of("c")]])  # y and z, as a stranger
    basket = (history.toarray()[0] > 0).astype(np.float64)
    vectors = model.vectors.toarray().astype(np.float64)
    nearest = np.argsort(((vectors - basket) ** 2).sum(axis=1), kind="stable")[:2]
    expected = 0.6 * basket + 0.4 * vectors[nearest].mean(axis=0)
    np.testing.assert_allclose(model.score(np.array([-1]), history)[0], expected, atol=1e-6)


# -- top_personal ---------------------------------------------------------------------------------


def test_top_personal_counts_orders_not_lines_or_units(toy: TrainingData) -> None:
    model = TopPersonalRecommender().fit(toy)
    assert _by_name(toy, model.occasions) == {
        "a": {"x": 3.0, "w": 3.0, "y": 1.0},
        "b": {"x": 1.0, "z": 1.0},
        "c": {"y": 3.0, "z": 1.0},
    }


def test_top_personal_half_life_weighs_occasions_by_their_age(toy: TrainingData) -> None:
    model = TopPersonalRecommender(half_life_days=2.0).fit(toy)  # the last order is day 6
    occasions = _by_name(toy, model.occasions)
    assert occasions["c"]["y"] == pytest.approx(0.5**1.5 + 0.5**1 + 0.5**0.5, abs=1e-6)
    assert occasions["a"]["x"] == pytest.approx(0.5**3 + 0.5**1.5 + 1.0, abs=1e-6)


def test_top_personal_lists_staples_first_then_popular_items(toy: TrainingData) -> None:
    model = TopPersonalRecommender().fit(toy)
    popularity = np.asarray((toy.matrix > 0).sum(axis=0), dtype=np.float32).ravel()
    c = toy.member_ids.index_of("c")
    ids, scores = model.recommend(
        np.array([c]), toy.matrix[[c]], n=4, tie_breaker=popularity_tie_breaker(popularity)
    )
    # y (3 orders), z (1), then the others by popularity: x (2 members) before w (1).
    assert toy.item_ids.to_external(ids[0]).tolist() == ["y", "z", "x", "w"]
    assert (np.diff(scores[0]) <= 0).all()


def test_top_personal_scores_a_stranger_by_its_history_row(toy: TrainingData) -> None:
    model = TopPersonalRecommender().fit(toy)
    history = sp.csr_matrix(
        ([8.0, 24.0], ([0, 0], [toy.item_ids.index_of("w"), toy.item_ids.index_of("z")])),
        shape=(1, toy.n_items),
    )
    ids, _ = model.recommend(np.array([-1]), history, n=2)
    assert toy.item_ids.to_external(ids[0]).tolist() == ["z", "w"]


def test_top_personal_fits_are_deterministic(two_group_data: TrainingData) -> None:
    members = np.arange(two_group_data.n_members)
    first, second = (
        TopPersonalRecommender().fit(two_group_data).score(members, two_group_data.matrix)
        for _ in range(2)
    )
    np.testing.assert_array_equal(first, second)


# -- user_knn -------------------------------------------------------------------------------------


def _cosine_neighbour_scores(
    rows: np.ndarray, query: np.ndarray, k: int, exponent: float, itself: int | None
) -> np.ndarray:
    """Σ sim^exponent · row over the k most similar rows (brute force, ties by index)."""
    similarity = rows @ query / (np.linalg.norm(rows, axis=1) * np.linalg.norm(query))
    if itself is not None:
        similarity[itself] = -np.inf
    similarity[similarity <= 0] = -np.inf
    order = np.lexsort((np.arange(len(rows)), -similarity))[:k]
    order = order[np.isfinite(similarity[order])]
    return (similarity[order] ** exponent) @ rows[order]


@pytest.mark.parametrize("weighting", ["binary", "weights"])
def test_user_knn_sums_its_nearest_members_rows(
    two_group_data: TrainingData, weighting: str
) -> None:
    model = UserKNNRecommender(neighbors=4, exponent=2.0, weighting=weighting).fit(two_group_data)
    matrix = two_group_data.matrix.toarray().astype(np.float64)
    rows = (matrix > 0).astype(np.float64) if weighting == "binary" else matrix
    members = np.arange(6)
    scores = model.score(members, two_group_data.matrix[members])
    for member in members:
        expected = _cosine_neighbour_scores(rows, rows[member], 4, 2.0, itself=member)
        np.testing.assert_allclose(scores[member], expected, rtol=1e-5, atol=1e-6)
    # A stranger with member 0's history is matched against everyone, member 0 included.
    stranger = model.score(np.array([-1]), two_group_data.matrix[[0]])[0]
    expected = _cosine_neighbour_scores(rows, rows[0], 4, 2.0, itself=None)
    np.testing.assert_allclose(stranger, expected, rtol=1e-5, atol=1e-6)


# -- the neighbour search -------------------------------------------------------------------------


def _tastes(n_members: int = 1_500, n_items: int = 300, seed: int = 0) -> sp.csr_matrix:
    """Members of 20 tastes: 15 purchases each, 80% among their taste's 20 items, with
    random weights (like TIFU vectors)."""
    rng = np.random.default_rng(seed)
    taste = rng.integers(0, 20, n_members)
    favourites = np.stack([rng.choice(n_items, 20, replace=False) for _ in range(20)])
    own = rng.random((n_members, 15)) < 0.8
    items = np.where(
        own,
        favourites[taste[:, None], rng.integers(0, 20, (n_members, 15))],
        rng.integers(0, n_items, (n_members, 15)),
    )
    rows = np.repeat(np.arange(n_members), 15)
    weights = rng.random(rows.size).astype(np.float32)
    return sp.csr_matrix((weights, (rows, items.ravel())), shape=(n_members, n_items))


def _brute_force(rows: np.ndarray, queries: np.ndarray, metric: str, k: int) -> np.ndarray:
    if metric == "euclidean":
        scores = -((queries[:, None, :] - rows[None, :, :]) ** 2).sum(axis=2)
    else:
        dots = queries @ rows.T
        norms = np.linalg.norm(rows, axis=1) * np.linalg.norm(queries, axis=1)[:, None]
        scores = np.full(dots.shape, -np.inf)
        np.divide(dots, norms, out=scores, where=dots > 0)
    order = np.lexsort((np.broadcast_to(np.arange(len(rows)), scores.shape), -scores), axis=1)
    ids = order[:, :k]
    return np.where(np.isfinite(np.take_along_axis(scores, ids, axis=1)), ids, -1)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_exact_search_is_brute_force_in_any_blocking(
    metric: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _tastes(n_members=300, n_items=80)
    queries = sp.vstack([rows[:40], sp.csr_matrix((1, 80), dtype=np.float32)]).tocsr()
    expected = _brute_force(rows.toarray(), queries.toarray(), metric, 12)
    neighbours = MemberNeighbours.build(rows, metric)
    assert neighbours.kind == "exact"
    ids, scores = neighbours.search(queries, 12)
    np.testing.assert_array_equal(ids, expected)
    if metric == "cosine":  # an empty row shares nothing: no neighbours at all
        assert (ids[-1] == -1).all() and np.isneginf(scores[-1]).all()
    monkeypatch.setattr(neighbours_module, "_CELLS_PER_BLOCK", 2 * rows.shape[0])
    np.testing.assert_array_equal(neighbours.search(queries, 12)[0], ids)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_faiss_neighbours_recall_the_exact_ones(metric: str) -> None:
    rows = _tastes()
    exact = MemberNeighbours.build(rows, metric)
    approximate = MemberNeighbours.build(rows, metric, SMALL_FAISS)
    assert approximate.kind == "faiss"
    queries = rows[:300]
    exact_ids, exact_scores = exact.search(queries, 20)
    found_ids, found_scores = approximate.search(queries, 20)
    recall = (exact_ids[:, :, None] == found_ids[:, None, :]).any(axis=2).mean()
    assert recall >= 0.9
    # The candidates are approximate, their scores are not: a member found is scored exactly.
    both = exact_ids[:, :1] == found_ids[:, :1]
    np.testing.assert_allclose(found_scores[:, :1][both], exact_scores[:, :1][both], rtol=1e-5)


def _mapped(matrix: sp.csr_matrix) -> bool:
    """Whether the matrix's three arrays are views of memory-mapped files (not copies)."""

    def from_file(array: np.ndarray | None) -> bool:
        while array is not None:
            if isinstance(array, np.memmap):
                return True
            array = array.base if isinstance(array.base, np.ndarray) else None
        return False

    return all(from_file(array) for array in (matrix.data, matrix.indices, matrix.indptr))


@pytest.mark.parametrize("config", [NeighbourConfig(), SMALL_FAISS], ids=["exact", "faiss"])
def test_saved_neighbours_map_their_arrays_and_answer_alike(
    config: NeighbourConfig, tmp_path: Path
) -> None:
    rows = _tastes(n_members=400, n_items=100)
    built = MemberNeighbours.build(rows, "euclidean", config)
    built.save(tmp_path / "neighbours")
    loaded = MemberNeighbours.load(tmp_path / "neighbours", mmap=True)
    assert loaded.kind == built.kind
    assert all(_mapped(matrix) for matrix in (loaded.rows, loaded.columns))
    for got, want in zip(loaded.search(rows[:50], 10), built.search(rows[:50], 10), strict=True):
        np.testing.assert_array_equal(got, want)


# -- the models saved and loaded ------------------------------------------------------------------


def _stored_matrices(model: Recommender) -> list[sp.csr_matrix]:
    if isinstance(model, TopPersonalRecommender):
        return [model.occasions]
    assert isinstance(model, UserKNNRecommender | TIFUKNNRecommender)
    return [model.neighbours.rows, model.neighbours.columns]


@pytest.mark.parametrize(
    "model",
    [
        TopPersonalRecommender(half_life_days=30.0),
        UserKNNRecommender(neighbors=5, weighting="weights"),
        UserKNNRecommender(neighbors=5, exact_below=0),
        TIFUKNNRecommender(neighbors=5, group_count=3),
        TIFUKNNRecommender(neighbors=5, exact_below=0),
    ],
    ids=["top_personal", "user_knn", "user_knn-faiss", "tifu_knn", "tifu_knn-faiss"],
)
def test_models_reload_memory_mapped_and_score_strangers_alike(
    model: Recommender, two_group_data: TrainingData, tmp_path: Path
) -> None:
    model.fit(two_group_data)
    model.save(tmp_path / model.name)
    loaded = type(model).load(tmp_path / model.name, mmap=True)
    assert all(_mapped(matrix) for matrix in _stored_matrices(loaded))
    members = np.array([-1, 0, 1, -1])
    histories = two_group_data.matrix[[2, 0, 1, 3]]
    np.testing.assert_array_equal(loaded.score(members, histories), model.score(members, histories))


# -- tuning ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model", [TopPersonalRecommender, UserKNNRecommender, TIFUKNNRecommender], ids=str
)
def test_the_first_trial_of_a_search_is_the_defaults(model: type[Recommender]) -> None:
    defaults = model.Params().model_dump()
    trial = optuna.trial.FixedTrial(_as_trial_values(model.name, defaults))
    assert model(**SEARCH_SPACES[model.name](trial)).get_params() == model().get_params()
