"""Which column names look like personal data: names, e-mail, phone, address, birthday, id
documents (in English and the common Chinese headers).

The members loader keeps only the columns the product reads and drops every other one, so a
personal column is never loaded whatever its name: this list only decides how a dropped column
is *reported* ("personal" or "unused"), so that an operator sees at once that the export they
handed over held more than it needed to. A name it misses is still dropped.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["looks_personal"]

#: Parts of a name (lower case, separators removed) that make it personal wherever they occur:
#: ``CustomerName``, ``e-mail``, ``phone_number``, ``home_address``, ``DateOfBirth``, ``IDCard``.
_ANYWHERE: Final = (
    "name", "mail", "phone", "mobile", "address", "street", "postcode", "postalcode",
    "zipcode", "birth", "passport", "idcard", "nationalid", "identitycard", "identitynumber",
    "idnumber", "socialsecurity", "taxid", "licence", "license",
    "姓名", "名字", "电话", "手机", "联系方式", "地址", "住址", "生日", "出生", "身份证", "证件",
    "护照", "邮箱", "邮件", "电邮",
)  # fmt: skip
#: Words that are personal only as a whole word of the name (``tel`` in ``tel_no``, not in
#: ``hotel``; ``city`` but not ``ethnicity``).
_WHOLE_WORDS: Final = frozenset({"tel", "fax", "zip", "city", "town", "dob", "ssn", "nric", "addr"})

_CAMEL: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS: Final = re.compile(r"[^0-9a-z\u4e00-\u9fff]+")


def looks_personal(column: str) -> bool:
    """True when the column name says it holds personal data (see the module's docstring)."""
    words = [word for word in _SEPARATORS.split(_CAMEL.sub("_", column).lower()) if word]
    joined = "".join(words)
    return any(part in joined for part in _ANYWHERE) or not _WHOLE_WORDS.isdisjoint(words)
