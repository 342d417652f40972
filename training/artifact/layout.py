"""Where each part of a model artifact lives: the file names that writer and reader share.

Layout (paths relative to the artifact directory)::

    manifest.json               written last: format_version, created_at, data_end (the last
                                event the artifact learned from; live history starts after
                                it), data_fingerprint,
                                chosen, models {name: {class, params}}, indexes {name: {kind,
                                metric}}, extra_files, n_members, n_items, segment_names,
                                metrics, params, member_ids {pseudonymised, key_fingerprint}
                                (features.pseudonyms), files {relative path: sha256}
    ids/members.npy             external member ids; the position is the internal index
    ids/items.npy               external item ids; the position is the internal index
    models/<name>/              Recommender.save: params.json and the model's .npy/.npz arrays
    indexes/<name>/             ItemIndex.save: index.faiss and index.json
    histories/data.npy          members x items CSR of the weighted training interactions
    histories/indices.npy         (what models score and fold in from), as three arrays so
    histories/indptr.npy          that they can be memory-mapped (an .npz cannot)
    purchases/{data,indices,indptr}.npy
                                members x items indicator of training purchases (for
                                "exclude purchased")
    popularity.npy              one score per item (cold-start answers)
    segments/popularity.npy     segments x items (optional)
    segments/members.npy        int32 segment code per member, -1 when unknown (optional)
    catalog.parquet             item_id and the filter fields; row i is item i (optional)
    lists/{items,scores,from_model}.npy
                                every member's top ``depth`` items by one model, computed
                                after the rest (:mod:`training.artifact.lists`; optional)
    <name>                      extra files copied in as they are, at the top level:
                                metrics.json, report.html, rules.parquet,
                                item_cycles.parquet, purchase_cycles.parquet, ...
"""

from __future__ import annotations

import re

from features import columns as col

FORMAT_VERSION = 1

MANIFEST = "manifest.json"
MEMBER_IDS = "ids/members.npy"
ITEM_IDS = "ids/items.npy"
MODELS_DIR = "models"
INDEXES_DIR = "indexes"
HISTORIES_DIR = "histories"
PURCHASES_DIR = "purchases"
HISTORY_PARTS = ("data", "indices", "indptr")
POPULARITY = "popularity.npy"
SEGMENT_POPULARITY = "segments/popularity.npy"
MEMBER_SEGMENTS = "segments/members.npy"
CATALOG = "catalog.parquet"
LISTS_DIR = "lists"
LIST_PARTS = ("items", "scores", "from_model")
#: The extra files ``recsys train`` adds (training.publish) and serving reads.
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
RULES_FILE = "rules.parquet"
#: Purchase cycles (training.buy_again, features.purchase_cycles): per item (row i is item i:
#: rebuy rate, median interval, repeatable) and per member and item bought (internal indices:
#: occasions, last purchase, cycle), for the buy-again list and the repeatable mask.
ITEM_CYCLES_FILE = "item_cycles.parquet"
PURCHASE_CYCLES_FILE = "purchase_cycles.parquet"
#: The member scores' validation and test figures (``recsys members score`` writes the same
#: file beside its output).
MEMBERS_METRICS_FILE = "members_metrics.json"

#: Catalog fields that serving filters or displays by; other catalog columns (descriptions,
#: tags) only matter to training and stay out of the artifact.
CATALOG_FIELDS = (
    col.TITLE, col.CATEGORY, col.BRAND, col.PRICE, col.AVAILABLE, col.REPEATABLE,
)  # fmt: skip

#: Top-level names the artifact itself uses; extra files may not take them.
RESERVED_TOP_LEVEL = frozenset(
    {MANIFEST, POPULARITY, CATALOG, "ids", MODELS_DIR, INDEXES_DIR, HISTORIES_DIR,
     PURCHASES_DIR, "segments", LISTS_DIR}
)  # fmt: skip

#: Model, index and extra file names become path components, so they must be plain names.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
