"""The bundle's STAC catalog: a Collection for the district (``catalog.json``) and one Item per
layer (``stac/<layer>.json``): the 3D Tiles layers, the anchors, the DTM and DSM, the analysis,
the reports.

Every asset carries the file extension's ``file:checksum`` (a sha2-256 multihash) and
``file:size``; every Item the projection extension's CRS of its data (``proj:epsg``, else
``proj:wkt2``) and extent in it. The catalog is self-contained (relative links, no ``self``), so
the bundle can move. Validation runs offline: pystac ships the core STAC schemas and this
package the extension schemas (``pipeline/schemas/stac``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pystac

from pipeline.core.atomic import sha256_file

FILE_EXTENSION = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
PROJECTION_EXTENSION = "https://stac-extensions.github.io/projection/v1.1.0/schema.json"
EXTENSIONS = [FILE_EXTENSION, PROJECTION_EXTENSION]
CATALOG = "catalog.json"
ITEMS = "stac"
#: multihash prefix of a 32-byte sha2-256 digest (code 0x12, length 0x20)
SHA256_MULTIHASH = "1220"


@dataclass(frozen=True)
class LayerAsset:
    """One file of a layer: its key, bundle-relative path, media type, roles and title, and any
    further fields (``proj:*`` of a raster, ``dmctwin:*``)."""

    key: str
    href: str
    media_type: str
    roles: tuple[str, ...] = ("data",)
    title: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Layer:
    """One Item: its id, title and description, WGS84 extent (west, south, east, north; degrees),
    the projection fields of its data and further properties, and its assets."""

    id: str
    title: str
    description: str
    bbox: tuple[float, float, float, float]
    assets: list[LayerAsset]
    projection: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)


def file_fields(bundle: Path, href: str) -> dict[str, Any]:
    """The file extension's fields of the bundle file ``href``."""
    path = bundle / href
    return {"file:checksum": SHA256_MULTIHASH + sha256_file(path), "file:size": path.stat().st_size}


def projection_of(crs: Any) -> dict[str, Any]:
    """``proj:epsg`` of a pyproj CRS with an EPSG code, else ``proj:epsg`` null and ``proj:wkt2``."""
    code = crs.to_epsg()
    return {"proj:epsg": code} if code is not None else {"proj:epsg": None, "proj:wkt2": crs.to_wkt()}


def _asset(bundle: Path, a: LayerAsset, base: str) -> pystac.Asset:
    return pystac.Asset(base + a.href, a.title, None, a.media_type, list(a.roles),
                        {**file_fields(bundle, a.href), **a.fields})


def write_catalog(bundle: Path, *, collection_id: str, title: str, description: str, version: str,
                  bbox: Sequence[float], start: dt.datetime, end: dt.datetime,
                  assets: dict[str, LayerAsset], layers: Sequence[Layer], properties: dict[str, Any]) -> None:
    """Write ``catalog.json`` (the Collection, with ``assets`` for clients that read it alone)
    and one Item per layer under ``stac/``; ``start``/``end`` (UTC) date the data."""
    collection = pystac.Collection(
        collection_id, description,
        pystac.Extent(pystac.SpatialExtent([list(bbox)]), pystac.TemporalExtent([[start, end]])),
        title=title, license="other", stac_extensions=list(EXTENSIONS),
        extra_fields={"version": version, **properties})
    for key, a in assets.items():
        collection.add_asset(key, _asset(bundle, a, ""))
    for layer in layers:
        w, s, e, n = layer.bbox
        geometry = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
        props = {**layer.projection, **layer.properties, "title": layer.title, "description": layer.description}
        if start != end:
            props.update(start_datetime=pystac.utils.datetime_to_str(start),
                         end_datetime=pystac.utils.datetime_to_str(end))
        item = pystac.Item(layer.id, geometry, list(layer.bbox), start if start == end else None, props,
                           stac_extensions=list(EXTENSIONS), collection=collection)
        for a in layer.assets:
            item.add_asset(a.key, _asset(bundle, a, "../"))
        collection.add_item(item)
        item.set_self_href(str(bundle / ITEMS / f"{layer.id}.json"))
    collection.set_self_href(str(bundle / CATALOG))
    collection.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)


@cache
def extension_schema_files() -> dict[str, Path]:
    """Schema URL -> the shipped copy (for stac-validator's ``schema_map`` too)."""
    folder = Path(__file__).resolve().parent.parent / "schemas" / "stac"
    return {json.loads(p.read_text(encoding="utf-8"))["$id"].rstrip("#"): p for p in sorted(folder.glob("*.json"))}


def offline_validator() -> Any:
    """A pystac validator that resolves the core and this bundle's extension schemas locally
    (any other schema it would fetch, and fail to with no network)."""
    from pystac.validation.stac_validator import JsonSchemaSTACValidator

    validator = JsonSchemaSTACValidator()
    for url, path in extension_schema_files().items():
        validator.schema_cache[url] = json.loads(path.read_text(encoding="utf-8"))
    return validator


def check_catalog(bundle: Path) -> list[tuple[str, str]]:
    """(file, problem) for the catalog at ``bundle``: each STAC object against its schemas, every
    link and asset resolving, every asset's ``file:checksum`` and ``file:size``."""
    validator = offline_validator()
    problems: list[tuple[str, str]] = []
    todo, seen = [CATALOG], set()
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        path = bundle / name
        if not path.is_file():
            problems.append((name, "missing"))
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            pystac.validation.validate_dict(doc, href=str(path), validator=validator)
        except (ValueError, UnicodeDecodeError) as exc:
            problems.append((name, f"not JSON: {exc}"))
            continue
        except pystac.STACValidationError as exc:
            problems.append((name, f"STAC: {_first_cause(exc)}"))
        except pystac.validation.GetSchemaError as exc:
            problems.append((name, f"STAC: a schema this bundle's catalog declares is not shipped: {exc}"))
        base = Path(name).parent
        for key, asset in (doc.get("assets") or {}).items():
            problems += [(name, f"asset {key!r}: {p}") for p in _asset_problems(bundle, base, asset)]
        for link in doc.get("links") or []:
            href = link.get("href") if isinstance(link, dict) else None
            if not isinstance(href, str) or "://" in href:
                continue
            resolved = (bundle / base / href).resolve()
            if not resolved.is_file():
                problems.append((name, f"link {link.get('rel')!r}: {href} does not exist"))
            elif link.get("rel") in ("item", "child"):
                todo.append(resolved.relative_to(bundle.resolve()).as_posix())
    return problems


def _first_cause(exc: pystac.STACValidationError) -> str:
    """'path: message' of the deepest error under a failed schema: an extension's schema fails
    as a whole (one of its Item / Collection branches), the field at fault lies below."""
    import jsonschema

    errors = exc.source if isinstance(exc.source, list) else []
    leaves: list[jsonschema.ValidationError] = []
    while errors:
        err = errors.pop(0)
        if err.context:
            errors += err.context
        else:
            leaves.append(err)
    if not leaves:
        return str(exc).splitlines()[0]
    deepest = max(leaves, key=lambda e: len(e.absolute_path))
    return f"{'/'.join(str(p) for p in deepest.absolute_path) or '(root)'}: {deepest.message}"


def _asset_problems(bundle: Path, base: Path, asset: Any) -> list[str]:
    href = asset.get("href") if isinstance(asset, dict) else None
    if not isinstance(href, str):
        return ["no href"]
    path = (bundle / base / href).resolve()
    if not path.is_relative_to(bundle.resolve()):
        return [f"{href} lies outside the bundle"]
    if not path.is_file():
        return [f"{href} does not exist"]
    out = []
    checksum = asset.get("file:checksum")
    if isinstance(checksum, str) and checksum.startswith(SHA256_MULTIHASH) and \
            checksum[len(SHA256_MULTIHASH):] != sha256_file(path):
        out.append(f"{href}: file:checksum differs: changed since it was published")
    size = asset.get("file:size")
    if isinstance(size, int) and size != path.stat().st_size:
        out.append(f"{href}: file:size is {size}, the file has {path.stat().st_size} bytes")
    return out
