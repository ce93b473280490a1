# dmc-twin: make setup | demo | test | bench
# setup is idempotent: it installs only what is missing or changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# open3d needs libusb/libGL/libgomp; proj-data carries the EGM96 geoid grid (egm96_15.gtx);
# chromium renders the bundle in CesiumJS for the tests (Playwright drives it; it cannot download
# a browser here) with WebGL on Mesa's llvmpipe (libegl-mesa0, libgl1-mesa-dri); fonts-nanum
# draws Korean names in its screenshots
APT_PACKAGES := libusb-1.0-0 libgl1 libgomp1 proj-data chromium libegl-mesa0 libgl1-mesa-dri fonts-nanum

.PHONY: setup demo test bench bench-sunlight bench-city clean-out

setup: .setup-stamp

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# npm runs no install scripts: the tools we use are plain JavaScript, and the native add-ons some
# of 3d-tiles-tools' dependencies would build (sqlite, sharp) download binaries we cannot reach
.setup-stamp: pyproject.toml package.json $(BIN)/python
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,meshopt]'
	npm install --no-audit --no-fund --silent --ignore-scripts
	@touch $@

demo: setup
	$(BIN)/dmctwin run configs/sample.yaml --workdir out/sample
	@echo
	@echo "Done. Results in out/sample/:"
	@echo "  bundle/tileset.json          root 3D Tiles 1.1 (terrain, buildings, point cloud)"
	@echo "  bundle/anchors/anchors.json  AR anchors (WGS84 + ellipsoidal heights)"
	@echo "  reports/                     georef, clean, mesh, tile reports; manifest.json"
	@echo "  bundle/viewer/               the web viewer (offline; CesiumJS included)"
	@echo "Check: $(BIN)/dmctwin validate out/sample/bundle"
	@echo "View:  $(BIN)/dmctwin serve out/sample/bundle --open    (then http://127.0.0.1:8000/)"

# one pytest worker per core (pytest-xdist), each test file on one worker so that a file's
# fixtures are built once; the workers share the sample run, and take the files in the order
# tests/conftest.py gives them (the long ones first, so that both workers end together)
test: setup
	$(BIN)/python -m pytest -n auto --dist loadfile --no-loadscope-reorder

# side-by-side point-cloud benchmark against py3dtiles (installs it into .bench/ on first use);
# writes docs/benchmarks.md: six 20 M-point inputs (aerial 10/20/50 pts/m², unclassified,
# shuffled, a mobile corridor) and 5 M, 50 M and LAZ runs, each tool three times interleaved
bench: setup
	$(BIN)/python benchmarks/pointcloud_vs_py3dtiles.py

# the sunlight analysis against the bare ray caster on the sample's scene; about 4 minutes
bench-sunlight: setup
	$(BIN)/python benchmarks/sunlight.py --repeat 3

# the procedural Seoul at 10k and 100k buildings (about 4 minutes; 600k takes 18 minutes and more
# memory than the 4 GB target, so it is run on its own), then its 605 km² terrain in blocks and as
# one TIN (about 5 minutes); writes the city and terrain blocks of docs/benchmarks.md
bench-city: setup
	$(BIN)/python benchmarks/city.py --sizes 10000 100000 600000
	$(BIN)/python benchmarks/terrain_blocks.py --size 600000 --repeat 2

clean-out:
	rm -rf out
