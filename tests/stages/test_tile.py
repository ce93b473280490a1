"""The tile stage on a city whose building quadtree is deeper than one tileset JSON holds: the
deeper levels go to external tilesets that our validator follows (boxes, errors, transforms
across files) and that reach every building tile exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.artifacts.features import read_feature_index
from pipeline.core.tileset_check import validate_tileset
from pipeline.samples.city import generate_city
from pipeline.config import TileConfig
from tests.conftest import official_agrees, run_cli

pytestmark = pytest.mark.slow


def _documents(layer: Path) -> dict[str, dict]:
    """Every tileset JSON of the layer reachable from its tileset.json (path relative to the layer)."""
    found: dict[str, dict] = {}

    def read(rel: Path) -> None:
        doc = json.loads((layer / rel).read_text())
        found[rel.as_posix()] = doc

        def walk(tile: dict) -> None:
            uri = tile.get("content", {}).get("uri", "")
            if uri.endswith(".json"):
                read(Path(rel.parent, uri))
            for child in tile.get("children", []):
                walk(child)
        walk(doc["root"])

    read(Path("tileset.json"))
    return found


def _count(tile: dict) -> int:
    return 1 + sum(_count(c) for c in tile.get("children", []))


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("city")
    city = generate_city(1_500, folder)
    # few buildings per tile, and coarse tiles that leave most out (not the full detail of all, which
    # would end the tree early): a quadtree deeper than one tileset JSON holds
    cfg = folder / "city.yaml"
    cfg.write_text("site: {name: deep city, origin: {lat: 37.5770, lon: 126.8898}}\n"
                   f"inputs:\n  dem: {{path: {city.dem}}}\n"
                   f"  footprints: {{path: {city.footprints}, fields: {{id: id, floors: floors, height: height}}}}\n"
                   "stages: {tile: {tile_max_features: 4, hlod_error_fraction: 0.3}, analysis: {enabled: false}}\n")
    proc = run_cli("run", str(cfg), "--workdir", str(folder / "w"), "--stages", "ingest..tile", "--quiet")
    assert proc.returncode == 0, proc.stderr
    return folder / "w" / "artifacts" / "tile"


def test_deep_levels_go_to_external_tilesets_that_hold_every_tile_once(city):
    layer = city / "buildings"
    docs = _documents(layer)
    assert len(docs) > 1 and all(p == "tileset.json" or p.startswith("tilesets/") for p in docs)
    assert {p.relative_to(layer).as_posix() for p in layer.rglob("*.json") if p.parent.name == "tilesets"} \
        == set(docs) - {"tileset.json"}  # no tileset written that nothing refers to
    assert all(_count(d["root"]) <= TileConfig().tileset_max_tiles for d in docs.values())
    glbs: list[str] = []
    for rel, doc in docs.items():
        def walk(tile: dict, base: Path = Path(rel).parent) -> None:
            uri = tile.get("content", {}).get("uri", "")
            if uri.endswith(".glb"):
                glbs.append((base / uri).as_posix().replace("tilesets/../", ""))
            for child in tile.get("children", []):
                walk(child)
        walk(doc["root"])
    assert len(glbs) == len(set(glbs))
    assert set(glbs) == {p.relative_to(layer).as_posix() for p in (layer / "tiles").glob("*.glb")}
    leaves = {ref.tile for ref in read_feature_index(city).values()}
    assert len(read_feature_index(city)) == 1_500 and leaves <= set(glbs)


def test_our_validator_follows_them_and_finds_nothing_wrong(city):
    report = validate_tileset(city / "tileset.json", gltf=False)
    assert report.valid, report.problems[:5]
    on_disk = sum(1 for _ in (city / "buildings" / "tiles").glob("*.glb"))
    assert report.tilesets >= 2 + len(_documents(city / "buildings")) - 1
    assert report.tiles > on_disk
    official_agrees(city)


def test_a_broken_external_tileset_is_found(city, tmp_path):
    import shutil

    copy = tmp_path / "tile"
    shutil.copytree(city, copy)
    deep = sorted((copy / "buildings" / "tilesets").glob("*.json"))[0]
    doc = json.loads(deep.read_text())
    doc["root"]["geometricError"] = 1e6  # above the tile that refers to it
    deep.write_text(json.dumps(doc))
    report = validate_tileset(copy / "tileset.json", gltf=False)
    assert any(deep.name in f.where and "geometricError" in f.message for f in report.errors), report.problems
