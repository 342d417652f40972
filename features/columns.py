"""Column names and event vocabulary of the data contract (DESIGN section 3).

Every module refers to these constants instead of string literals, so that a rename is one edit
and a typo is an ``AttributeError`` instead of a silent empty column.
"""

from __future__ import annotations

from typing import Final

MEMBER_ID: Final = "member_id"
ITEM_ID: Final = "item_id"
EVENT: Final = "event"
TIMESTAMP: Final = "timestamp"
QUANTITY: Final = "quantity"
PRICE: Final = "price"
ORDER_ID: Final = "order_id"
VALUE: Final = "value"

#: Item catalog columns (``items.parquet`` / ``--items``).
TITLE: Final = "title"
CATEGORY: Final = "category"
BRAND: Final = "brand"
TAGS: Final = "tags"
DESCRIPTION: Final = "description"
AVAILABLE: Final = "available"
#: Bought again and again (groceries, refills): bundles may propose it to a member who
#: bought it before.
REPEATABLE: Final = "repeatable"
#: When the item went on sale (optional): the new-arrival buyer tag counts a purchase within
#: so many days of it; without it an item's first event in the data stands in.
RELEASED_AT: Final = "released_at"

#: Member table columns (``members.parquet`` / ``--members``).
JOINED_AT: Final = "joined_at"
TIER: Final = "tier"
REGION: Final = "region"
#: The member's date of birth (optional): the only source of a profile's age band, so that an
#: age is always as of the profile's reference time, never a figure that went stale in the file.
BIRTH_DATE: Final = "birth_date"

#: Member score columns (``member_scores.parquet`` of the model artifact, ``recsys members
#: score``, the profiles): named once here, so that the light readers of the scores (profiles,
#: targeting, the dashboard's figures) need not import the member models that write them.
CHURN_RISK: Final = "churn_risk"
CHURN_BAND: Final = "churn_band"
EXPECTED_PURCHASES: Final = "expected_purchases"
EXPECTED_SPEND: Final = "expected_spend"

#: Bookkeeping columns added by validation; they never come from user files.
ROW_NUMBER: Final = "_row"
REASON: Final = "_reason"

#: Interaction events, one constant each, so that a module filtering on purchases names
#: :data:`PURCHASE` instead of spelling the word.
VIEW: Final = "view"
CLICK: Final = "click"
CART: Final = "cart"
PURCHASE: Final = "purchase"
#: The events, weakest signal first. The order is meaningful: matrices weight them in
#: increasing strength and evaluation treats "click or stronger" as a positive.
EVENTS: Final[tuple[str, ...]] = (VIEW, CLICK, CART, PURCHASE)
#: The event of a row whose file has no event column, or an empty event.
DEFAULT_EVENT: Final = PURCHASE

REQUIRED_INTERACTION_COLUMNS: Final[tuple[str, ...]] = (MEMBER_ID, ITEM_ID, TIMESTAMP)
OPTIONAL_INTERACTION_COLUMNS: Final[tuple[str, ...]] = (EVENT, QUANTITY, PRICE, ORDER_ID, VALUE)
#: Catalog fields that may ride along in an interactions file (Online Retail's Description).
CARRIED_ITEM_COLUMNS: Final[tuple[str, ...]] = (TITLE, CATEGORY, BRAND)
