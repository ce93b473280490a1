"""Korean building-use codes (건축물 용도 코드) as national building layers carry them.

The road-name address building layer (도로명주소 건물, ``TL_SPBD_BULD``) and the building
register give a building's main use as a five-digit code whose first two digits are its class
in the Building Act's use table (건축법 시행령 별표 1: 01 detached houses ... 29 campsites).
Classes are translated to the twin's use categories (which colour the tiles); their Korean
names are kept here for reports.
"""

from __future__ import annotations

#: class (first two digits) -> (Korean name, the twin's use category)
USE_CLASSES: dict[str, tuple[str, str]] = {
    "01": ("단독주택", "residential"), "02": ("공동주택", "residential"),
    "03": ("제1종근린생활시설", "retail"), "04": ("제2종근린생활시설", "retail"),
    "05": ("문화및집회시설", "culture"), "06": ("종교시설", "culture"), "07": ("판매시설", "retail"),
    "08": ("운수시설", "transport"), "09": ("의료시설", "public"), "10": ("교육연구시설", "public"),
    "11": ("노유자시설", "public"), "12": ("수련시설", "public"), "13": ("운동시설", "stadium"),
    "14": ("업무시설", "office"), "15": ("숙박시설", "retail"), "16": ("위락시설", "retail"),
    "17": ("공장", "other"), "18": ("창고시설", "other"), "19": ("위험물저장및처리시설", "other"),
    "20": ("자동차관련시설", "transport"), "21": ("동물및식물관련시설", "other"),
    "22": ("자원순환관련시설", "other"), "23": ("교정및군사시설", "public"), "24": ("방송통신시설", "broadcast"),
    "25": ("발전시설", "other"), "26": ("묘지관련시설", "other"), "27": ("관광휴게시설", "culture"),
    "28": ("장례시설", "other"), "29": ("야영장시설", "other"),
}


def use_of_code(value: str | None) -> tuple[str | None, str | None]:
    """(the twin's use category, the class's Korean name) of a use code such as ``14000`` or
    ``02001``; (None, None) for an empty value and ("other", None) for a code outside the table."""
    if value is None or not str(value).strip():
        return None, None
    text = str(value).strip()
    if text.isdigit() and 2 < len(text) < 5:
        text = text.zfill(5)  # a five-digit code read as a number lost its leading zero
    found = USE_CLASSES.get(text[:2]) if text[:2].isdigit() else None
    return (found[1], found[0]) if found else ("other", None)


#: Korean class names -> the twin's use category (registers and layers give the name beside the code)
_USE_BY_NAME = {name: category for name, category in USE_CLASSES.values()}


def use_category(value: object) -> str | None:
    """The twin's use category of a use given as a code (``14000``) or a Korean class name
    (``업무시설``); other text is kept as it is; None for an empty value."""
    text = str(value if value is not None else "").strip()
    if not text:
        return None
    if text in _USE_BY_NAME:
        return _USE_BY_NAME[text]
    return use_of_code(text)[0] if text.isdigit() else text
