"""Vector inputs (GeoJSON, GPKG, shapefile) read with pyogrio into shapely geometries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import shapely

from pipeline.core.geodesy import parse_crs
from pipeline.errors import CRSError, InputError


@dataclass
class FeatureSet:
    """Geometries (in ``crs``) with their attribute columns."""

    crs: pyproj.CRS
    geometries: np.ndarray          # object array of shapely geometries (None for empty)
    fields: dict[str, np.ndarray]   # column name -> values
    #: how the text was decoded when the file did not say (None: it said, or all text is ASCII)
    encoding_guess: str | None = None

    def __len__(self) -> int:
        return len(self.geometries)

    def value(self, column: str | None, i: int) -> Any:
        """Attribute ``column`` of feature ``i`` as a plain Python value, or None if absent/null."""
        if not column or column not in self.fields:
            return None
        v = self.fields[column][i]
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return None
        return v.item() if isinstance(v, np.generic) else v


#: what GDAL assumes for a shapefile whose .dbf has neither a .cpg nor a code page byte
GDAL_SHAPEFILE_DEFAULT = "ISO-8859-1"
#: tried, in order, on such a file's text: Korean public layers are CP949 (or EUC-KR, its subset)
GUESSES = ("utf-8", "cp949")


def _guess_encoding(columns: list[np.ndarray], path: Path) -> str | None:
    """The first of :data:`GUESSES` that decodes every text value read as Latin-1, None when all
    text is ASCII; InputError when none does."""
    texts = [v for col in columns if col.dtype == object for v in col if isinstance(v, str) and not v.isascii()]
    if not texts:
        return None
    raw = [t.encode("latin-1") for t in texts]
    for encoding in GUESSES:
        try:
            for b in raw:
                b.decode(encoding)
        except UnicodeDecodeError:
            continue
        return encoding
    raise InputError("the attributes' text is neither UTF-8 nor CP949 and the file does not say which it is "
                     "(no .cpg): set the input's encoding in the config", path=path)


def _read(path: Path, encoding: str | None) -> tuple[dict[str, Any], Any, list[np.ndarray]]:
    # imported here: GDAL's bindings add ~90 MB to every process that imports this module, and
    # most runs (a point cloud alone) and every point-cloud worker never read a vector layer
    import pyogrio.raw
    from pyogrio.errors import DataSourceError

    try:
        meta, _, wkb, columns = pyogrio.raw.read(path, encoding=encoding)
    except UnicodeDecodeError as exc:  # a ValueError too: caught first, it is the user's to fix
        said = encoding or f"{exc.encoding}, as the file declares (its .cpg)"
        raise InputError(f"the attributes' text is not {said}: an attribute value holds byte "
                         f"0x{exc.object[exc.start]:02x}, which it cannot decode; set the input's encoding in "
                         "the config (Korean layers: cp949)",
                         path=path) from None
    except (DataSourceError, RuntimeError, ValueError) as exc:
        raise InputError(f"not a readable vector file ({str(exc).splitlines()[0]})", path=path) from None
    return meta, wkb, list(columns)


def read_features(path: str | Path, crs: str | None = None, default_crs: str | None = None,
                  encoding: str | None = None) -> FeatureSet:
    """Read a vector file. ``crs`` overrides the file's CRS; ``default_crs`` applies when it has none;
    ``encoding`` overrides the attributes' text encoding (a shapefile without a .cpg is read as
    whichever of UTF-8 and CP949 decodes it, see ``encoding_guess``).

    RFC 7946 GeoJSON without a ``crs`` member is CRS84, as GDAL reports it.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("vector file not found", path=path)
    meta, wkb, columns = _read(path, encoding)
    guess = None
    if encoding is None and meta.get("encoding") == GDAL_SHAPEFILE_DEFAULT:
        guess = _guess_encoding(columns, path)
        if guess is not None:
            meta, wkb, columns = _read(path, guess)
    if crs:
        out_crs = parse_crs(crs, path=path)
    elif meta.get("crs"):
        out_crs = parse_crs(meta["crs"], path=path)
    elif default_crs:
        out_crs = parse_crs(default_crs, path=path)
    else:
        raise CRSError("file has no CRS; set the input's crs (or site.crs) in the config", path=path)
    geoms = shapely.from_wkb(wkb) if wkb is not None else np.array([], dtype=object)
    fields = {str(name): np.asarray(col) for name, col in zip(meta["fields"], columns, strict=True)}
    return FeatureSet(out_crs, np.asarray(geoms, dtype=object), fields, guess)
