"""Vector inputs (GeoJSON, GPKG, shapefile) read with pyogrio into shapely geometries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.raw
import pyproj
import shapely
from pyogrio.errors import DataSourceError

from pipeline.core.geodesy import parse_crs
from pipeline.errors import CRSError, InputError


@dataclass
class FeatureSet:
    """Geometries (in ``crs``) with their attribute columns."""

    crs: pyproj.CRS
    geometries: np.ndarray          # object array of shapely geometries (None for empty)
    fields: dict[str, np.ndarray]   # column name -> values

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


def read_features(path: str | Path, crs: str | None = None, default_crs: str | None = None) -> FeatureSet:
    """Read a vector file. ``crs`` overrides the file's CRS; ``default_crs`` applies when it has none.

    RFC 7946 GeoJSON without a ``crs`` member is CRS84, as GDAL reports it.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("vector file not found", path=path)
    try:
        meta, _, wkb, columns = pyogrio.raw.read(path)
    except (DataSourceError, RuntimeError, ValueError) as exc:
        raise InputError(f"not a readable vector file ({str(exc).splitlines()[0]})", path=path) from None
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
    return FeatureSet(out_crs, np.asarray(geoms, dtype=object), fields)
