// dmc-twin viewer: the bundle's layers, buildings, anchors, sun and shadows, offline.
//
// Reads only the bundle beside it: ../catalog.json (STAC: the layers and the anchors),
// ../tileset.json (the root tileset: its children are the layers) and ../anchors/anchors.json.
// Text from the bundle is only ever put into the page with textContent, never as HTML.
// window.twin is the page's state; the tests drive and read it.
"use strict";

(() => {
  const twin = (window.twin = {
    errors: [], failures: [], requests: 0, layers: {}, anchors: [], proposals: [],
    state: { colour: "none", proposals: new Set(), hidden: new Set() },
  });
  window.addEventListener("error", (e) => twin.errors.push(String(e.message)));
  window.addEventListener("unhandledrejection", (e) => twin.errors.push(String(e.reason)));

  const BUNDLE = new URL("../", document.baseURI);
  const KST_HOURS = 9; // Korea Standard Time, UTC+9, no daylight saving
  const $ = (id) => document.getElementById(id);
  const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
    "#ff9da7", "#9c755f", "#bab0ac", "#1f77b4", "#8c564b"];
  const HEIGHT_BINS = [[0, "#fef0d9"], [10, "#fdd49e"], [20, "#fdbb84"], [40, "#fc8d59"],
    [60, "#e34a33"], [100, "#b30000"], [150, "#6b0000"]];
  const ROOF_COLOURS = { flat: "#9ecae1", gable: "#e6550d", hip: "#31a354", shed: "#756bb1" };
  const NO_VALUE = "#d9d9d9";
  // by surface code (core/surfaces.py SURFACE_KINDS): ground, wall, roof, other
  const SURFACE_COLOURS = [["ground", "#7f7f7f"], ["wall", "#e8e1d0"], ["roof", "#d55e00"], ["other", "#56b4e9"]];

  function setStatus(text, error = false) {
    $("status").textContent = text;
    $("status").classList.toggle("error", error);
  }

  async function getJson(href) {
    const res = await fetch(new URL(href, BUNDLE));
    if (!res.ok) throw new Error(`${href}: HTTP ${res.status}`);
    return res.json();
  }

  // ---- time: Korea Standard Time and the solstices -------------------------------------------

  // Solstice instants from Meeus, Astronomical Algorithms (2nd ed.), table 27.B (years 2000-3000),
  // mean terms only: within about 15 minutes, which only matters for the date when a solstice
  // falls near midnight KST (the sun's declination then changes by under 0.001 degree a day).
  function solsticeDateKst(year, which) {
    const y = (year - 2000) / 1000;
    const jde = which === "summer"
      ? 2451716.56767 + 365241.62603 * y + 0.00325 * y ** 2 + 0.00888 * y ** 3 - 0.0003 * y ** 4
      : 2451900.05952 + 365242.74049 * y - 0.06223 * y ** 2 - 0.00823 * y ** 3 + 0.00032 * y ** 4;
    const kst = new Date((jde - 2440587.5) * 86400000 + KST_HOURS * 3600000);
    return kst.toISOString().slice(0, 10);
  }
  twin.solsticeDateKst = solsticeDateKst;

  function kstToJulian(date, time) {
    const [y, m, d] = date.split("-").map(Number);
    const [hh, mm] = time.split(":").map(Number);
    return Cesium.JulianDate.fromDate(new Date(Date.UTC(y, m - 1, d, hh - KST_HOURS, mm)));
  }

  function julianToKst(jd) {
    const iso = new Date(Cesium.JulianDate.toDate(jd).getTime() + KST_HOURS * 3600000).toISOString();
    return [iso.slice(0, 10), iso.slice(11, 16)];
  }

  twin.setTime = (date, time) => {
    $("date").value = date;
    $("time").value = time;
    twin.viewer.clock.currentTime = kstToJulian(date, time);
    saveState();
    twin.viewer.scene.requestRender();
  };

  // ---- buildings: colour, legend, proposals ---------------------------------------------------

  const category = {};
  function categoryColour(key, value) {
    if (value === undefined || value === null || value === "") return NO_VALUE;
    if (key === "roof_type" && ROOF_COLOURS[value]) return ROOF_COLOURS[value];
    const known = category[key] || (category[key] = []);
    let i = known.indexOf(value);
    if (i < 0) { known.push(value); i = known.length - 1; }
    return PALETTE[i % PALETTE.length];
  }

  function heightColour(h) {
    let colour = NO_VALUE;
    for (const [lo, c] of HEIGHT_BINS) if (typeof h === "number" && h >= lo) colour = c;
    return colour;
  }

  function featureColour(get) {
    const mode = twin.state.colour;
    if (mode === "height") return heightColour(get("height"));
    if (mode === "use" || mode === "roof_type") return categoryColour(mode, get(mode));
    return null;
  }

  // Whether a building shows: a proposal only while it is switched on, and the standing building
  // a switched-on proposal replaces is hidden meanwhile.
  twin.featureShown = (props) => {
    if (props.proposed) return twin.state.proposals.has(props.id);
    return !twin.proposals.some((p) => p.replaces === props.id && twin.state.proposals.has(p.id));
  };

  function buildingStyle() {
    const style = new Cesium.Cesium3DTileStyle();
    style.color = {
      evaluateColor(feature, result) {
        const css = featureColour((k) => feature.getProperty(k));
        return css ? Cesium.Color.fromCssColorString(css, result)
          : Cesium.Color.clone(Cesium.Color.WHITE, result);
      },
    };
    style.show = {
      evaluate(feature) {
        return twin.featureShown({ id: feature.getProperty("id"), proposed: feature.getProperty("proposed") });
      },
    };
    return style;
  }

  // Colours every building triangle by the kind of surface it is: the tiles' per-vertex property
  // attribute _SURFACE (class "surface", property "kind"), the same on all three corners.
  function surfaceShader() {
    const vec = (css) => {
      const c = Cesium.Color.fromCssColorString(css);
      return `vec3(${c.red.toFixed(4)}, ${c.green.toFixed(4)}, ${c.blue.toFixed(4)})`;
    };
    const [ground, wall, roof, other] = SURFACE_COLOURS.map(([, css]) => vec(css));
    return new Cesium.CustomShader({
      fragmentShaderText: `
        void fragmentMain(FragmentInput fsInput, inout czm_modelMaterial material) {
          float kind = float(fsInput.metadata.kind);
          vec3 c = kind < 0.5 ? ${ground} : kind < 1.5 ? ${wall} : kind < 2.5 ? ${roof} : ${other};
          material.diffuse = czm_srgbToLinear(c);
        }`,
    });
  }

  function restyle() {
    for (const layer of Object.values(twin.layers)) {
      if (layer.kind === "buildings" && layer.tileset) {
        layer.tileset.customShader = twin.state.colour === "surface" ? surfaceShader() : undefined;
        layer.tileset.makeStyleDirty();
      }
      if (layer.analysis === "sunlight" && layer.tileset && layer.tileset.customShader) {
        // with any proposal switched on, the receivers show their hours with the proposals built
        layer.tileset.customShader.setUniform("u_proposals", twin.state.proposals.size > 0 ? 1.0 : 0.0);
      }
    }
    drawSunLegend();
    drawLegend();
    saveState();
    twin.viewer.scene.requestRender();
  }

  function drawLegend() {
    const legend = $("legend");
    legend.replaceChildren();
    const mode = twin.state.colour;
    let entries = [];
    if (mode === "height") {
      entries = HEIGHT_BINS.map(([lo, c], i) => [
        i + 1 < HEIGHT_BINS.length ? `${lo}–${HEIGHT_BINS[i + 1][0]} m` : `≥ ${lo} m`, c]);
    } else if (mode === "use" || mode === "roof_type") {
      entries = twin.buildingValues(mode).map((v) => [v, categoryColour(mode, v)]);
    } else if (mode === "surface") {
      entries = SURFACE_COLOURS;
    }
    if (mode !== "none" && mode !== "surface") entries.push(["no value", NO_VALUE]);
    for (const [label, colour] of entries) {
      const li = document.createElement("li");
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = colour;
      const text = document.createElement("span");
      text.textContent = label;
      li.append(sw, text);
      legend.append(li);
    }
  }

  // The values a building property takes, from the building anchors (one per building).
  twin.buildingValues = (key) => {
    const values = new Set();
    for (const a of twin.anchors) {
      if (a.kind !== "building") continue;
      const v = key === "use" ? a.category : (a.properties || {})[key];
      if (v !== undefined && v !== null && v !== "") values.add(v);
    }
    return [...values].sort();
  };

  function drawProposals() {
    const box = $("proposals");
    box.replaceChildren();
    if (!twin.proposals.length) return;
    const h = document.createElement("h2");
    h.textContent = "Proposals";
    box.append(h);
    for (const p of twin.proposals) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "checkbox";
      input.dataset.proposal = p.id;
      input.checked = twin.state.proposals.has(p.id);
      input.addEventListener("change", () => twin.setProposal(p.id, input.checked));
      const text = document.createElement("span");
      text.textContent = ` ${p.name}` + (p.replaces ? ` (replaces ${p.replaces})` : " (new)");
      label.append(input, text);
      box.append(label);
    }
  }

  twin.setProposal = (id, on) => {
    if (on) twin.state.proposals.add(id); else twin.state.proposals.delete(id);
    const box = document.querySelector(`input[data-proposal="${CSS.escape(id)}"]`);
    if (box) box.checked = on;
    restyle();
  };

  twin.setColour = (mode) => {
    twin.state.colour = mode;
    $("colour").value = mode;
    restyle();
  };

  // ---- sunlight analysis ----------------------------------------------------------------------

  // The receivers' hours ramp (dark: no sun, bright: the whole window) and red where a receiver
  // fails the rule; the same ramp the tiles' baked colours use (core/content.py SUN_RAMP).
  const SUN_RAMP = ["#140c3c", "#781c6d", "#ed6925", "#fcffa4"];
  const FAIL = "#dc141e";

  function sunlightShader(fullHours) {
    return new Cesium.CustomShader({
      lightingModel: Cesium.LightingModel.UNLIT,
      uniforms: {
        u_proposals: { type: Cesium.UniformType.FLOAT, value: twin.state.proposals.size > 0 ? 1.0 : 0.0 },
        u_fullHours: { type: Cesium.UniformType.FLOAT, value: fullHours },
      },
      vertexShaderText: `
        void vertexMain(VertexInput vsInput, inout czm_modelVertexOutput vsOutput) {
          vsOutput.pointSize = 4.0;
        }`,
      fragmentShaderText: `
        vec3 ramp(float x) {
          vec3 c0 = vec3(0.078, 0.047, 0.235), c1 = vec3(0.471, 0.110, 0.427);
          vec3 c2 = vec3(0.929, 0.412, 0.145), c3 = vec3(0.988, 1.0, 0.643);
          float t = clamp(x, 0.0, 1.0) * 3.0;
          if (t < 1.0) return mix(c0, c1, t);
          if (t < 2.0) return mix(c1, c2, t - 1.0);
          return mix(c2, c3, t - 2.0);
        }
        void fragmentMain(FragmentInput fsInput, inout czm_modelMaterial material) {
          bool with = u_proposals > 0.5;
          float verdict = with ? float(fsInput.metadata.verdict_with_proposals) : float(fsInput.metadata.verdict);
          float hours = with ? fsInput.metadata.total_hours_with_proposals : fsInput.metadata.total_hours;
          if (verdict < 0.5) discard;  // no such receiver in this scenario (on or inside a proposal)
          // the ramp is in sRGB, as the legend's CSS; materials are linear
          material.diffuse = czm_srgbToLinear(verdict > 1.5 ? vec3(0.863, 0.078, 0.118) : ramp(hours / u_fullHours));
        }`,
    });
  }

  function drawSunLegend() {
    const box = $("sunlight");
    const layer = Object.values(twin.layers).find((l) => l.analysis === "sunlight");
    if (!box || !layer || !twin.sunlight) { if (box) box.hidden = true; return; }
    box.hidden = false;
    const s = twin.sunlight;
    const rule = s.settings.rule;
    $("sun-rule").textContent = `${s.settings.date}, ${s.settings.time_basis_name}: a window passes with `
      + `${rule.continuous_min / 60} h continuous in ${rule.continuous_window_h.join("–")} h `
      + `or ${rule.total_min / 60} h in total in ${rule.total_window_h.join("–")} h.`;
    $("sun-ramp").style.background = `linear-gradient(to right, ${SUN_RAMP.join(", ")})`;
    $("sun-ramp-max").textContent = `${twin.sunlightFullHours} h`;
    $("sun-fail").style.background = FAIL;
    $("sun-scenario").textContent = twin.state.proposals.size > 0
      ? "Showing: with the proposals built" : "Showing: the district as it stands";
    const lost = (s.counts || {}).changed_lost;
    $("sun-changed").textContent = s.proposals.length
      ? `${lost} receivers lose compliance with ${s.proposals.join(", ")}` : "";
  }

  // ---- layers ---------------------------------------------------------------------------------

  // Layers are the root tileset's children (external tilesets), named and typed by the catalog's
  // assets; a catalog asset of a tileset the root does not list is a layer too (analysis layers).
  function layerList(catalog, root) {
    const layers = new Map();
    const byHref = new Map();
    for (const [key, asset] of Object.entries(catalog.assets || {})) byHref.set(asset.href, [key, asset]);
    const add = (href) => {
      if (layers.has(href) || href === "tileset.json") return;
      const [key, asset] = byHref.get(href) || [href.split("/")[0], {}];
      layers.set(href, { name: key, href, title: asset.title || key, kind: asset["dmctwin:layer"] || key,
        analysis: asset["dmctwin:analysis"] || null });
    };
    for (const child of (root.root && root.root.children) || []) {
      if (child.content && child.content.uri && child.content.uri.endsWith(".json")) add(child.content.uri);
    }
    for (const [href, asset] of byHref.entries()) {
      if (asset[1].type === "application/json" && href.endsWith("tileset.json")) add(href);
    }
    return [...layers.values()];
  }

  async function loadLayer(layer) {
    const options = { maximumScreenSpaceError: 8 };
    options.shadows = layer.kind === "pointcloud" || layer.kind === "analysis"
      ? Cesium.ShadowMode.DISABLED : Cesium.ShadowMode.ENABLED;
    const tileset = await Cesium.Cesium3DTileset.fromUrl(new URL(layer.href, BUNDLE).href, options);
    tileset.tileFailed.addEventListener((e) => twin.failures.push(`${e.url}: ${e.message}`));
    tileset.tileLoad.addEventListener(() => { layer.tilesLoaded += 1; });
    tileset.allTilesLoaded.addEventListener(() => { layer.loaded = true; });
    if (layer.kind === "buildings") tileset.style = buildingStyle();
    if (layer.kind === "buildings" && twin.state.colour === "surface") tileset.customShader = surfaceShader();
    if (layer.kind === "pointcloud") tileset.style = new Cesium.Cesium3DTileStyle({ pointSize: 2 });
    if (layer.analysis === "sunlight" && twin.sunlight) tileset.customShader = sunlightShader(twin.sunlightFullHours);
    if (layer.kind === "terrain" && twin.settings.imagery) tileset.customShader = orthophotoShader(twin.settings.imagery);
    tileset.show = !twin.state.hidden.has(layer.name);
    layer.tileset = tileset;
    twin.viewer.scene.primitives.add(tileset);
  }

  function drawLayerToggles() {
    const box = $("layers");
    box.replaceChildren();
    const rows = Object.values(twin.layers).map((l) => [l.name, l.title]);
    if (twin.anchors.length) rows.push(["anchors", "AR anchors"]);
    for (const [name, title] of rows) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "checkbox";
      input.dataset.layer = name;
      input.checked = !twin.state.hidden.has(name);
      input.addEventListener("change", () => twin.setLayer(name, input.checked));
      const text = document.createElement("span");
      text.textContent = ` ${title}`;
      label.append(input, text);
      box.append(label);
    }
  }

  twin.setLayer = (name, on) => {
    if (on) twin.state.hidden.delete(name); else twin.state.hidden.add(name);
    const layer = twin.layers[name];
    if (layer && layer.tileset) layer.tileset.show = on;
    if (name === "anchors") twin.anchorEntities.forEach((e) => { e.show = on; });
    const box = document.querySelector(`input[data-layer="${CSS.escape(name)}"]`);
    if (box) box.checked = on;
    saveState();
    twin.viewer.scene.requestRender();
  };

  // ---- anchors --------------------------------------------------------------------------------

  twin.anchorEntities = [];
  function drawAnchors(doc) {
    const pins = new Cesium.PinBuilder();
    const colours = { building: Cesium.Color.ROYALBLUE, rooftop: Cesium.Color.DEEPSKYBLUE,
      terrain: Cesium.Color.DARKORANGE, gcp: Cesium.Color.LIMEGREEN, model: Cesium.Color.MEDIUMPURPLE };
    // a pin per building (and per rooftop) crowds the district seen whole: those show from closer
    const near = new Set(["building", "rooftop"]);
    for (const a of doc.anchors) {
      const pin = pins.fromColor(colours[a.kind] || Cesium.Color.GRAY, 24).toDataURL();
      const entity = twin.viewer.entities.add({
        position: Cesium.Cartesian3.fromDegrees(a.longitude, a.latitude, a.ellipsoidal_height),
        billboard: { image: pin, verticalOrigin: Cesium.VerticalOrigin.BOTTOM,
          disableDepthTestDistance: Number.POSITIVE_INFINITY,
          distanceDisplayCondition: new Cesium.DistanceDisplayCondition(0, near.has(a.kind) ? 600 : 20000) },
        label: { text: a.name, font: "12px sans-serif", pixelOffset: new Cesium.Cartesian2(0, -28),
          fillColor: Cesium.Color.WHITE, outlineColor: Cesium.Color.BLACK, outlineWidth: 2,
          style: Cesium.LabelStyle.FILL_AND_OUTLINE, disableDepthTestDistance: Number.POSITIVE_INFINITY,
          distanceDisplayCondition: new Cesium.DistanceDisplayCondition(0, 450) },
        show: !twin.state.hidden.has("anchors"),
      });
      entity.twinAnchor = a;
      twin.anchorEntities.push(entity);
    }
  }

  // ---- the info panel -------------------------------------------------------------------------

  function fmt(v) {
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(3).replace(/\.?0+$/, "");
    if (v === null || v === undefined || v === "") return "–";
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }

  function showInfo(title, rows) {
    $("info-title").textContent = title;
    const table = $("info-table");
    table.replaceChildren();
    for (const [k, v] of rows) {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.textContent = k;
      const td = document.createElement("td");
      td.textContent = fmt(v);
      tr.append(th, td);
      table.append(tr);
    }
    $("info").hidden = false;
    twin.info = { title, rows: Object.fromEntries(rows.map(([k, v]) => [k, v])) };
  }

  function accuracyRows() {
    const acc = twin.accuracy || {};
    return [["vertical accuracy (RMSE, m)", acc.vertical_rmse_m],
      ["horizontal accuracy (RMSE, m)", acc.horizontal_rmse_m]];
  }

  function showFeature(feature, layer) {
    const rows = feature.getPropertyIds().map((k) => [k, feature.getProperty(k)]);
    const id = feature.getProperty("id");
    const anchor = twin.anchors.find((a) => a.feature && a.feature.building_id === id);
    if (anchor) {
      rows.push(["ground (ellipsoidal, m)", anchor.ellipsoidal_height],
        ["ground (orthometric, m)", anchor.orthometric_height],
        ["height source", (anchor.properties || {}).height_source],
        ["ground source", (anchor.properties || {}).ground_source]);
      rows.push(...accuracyRows());
    }
    rows.push(["layer", layer ? layer.title : ""]);
    showInfo(feature.getProperty("name") || id || "Feature", rows);
  }

  function showAnchor(a) {
    const rows = [["id", a.id], ["kind", a.kind], ["category", a.category], ["latitude (°)", a.latitude],
      ["longitude (°)", a.longitude], ["ellipsoidal height (m, WGS84)", a.ellipsoidal_height],
      ["orthometric height (m)", a.orthometric_height], ["geoid undulation (m)", a.geoid_undulation],
      ["geoid model", twin.geoid], ["heading (°)", a.heading_deg]];
    if (a.arcore) {
      rows.push(["ARCore altitude above terrain (m)", a.arcore.altitude_above_terrain],
        ["ARCore altitude above rooftop (m)", a.arcore.altitude_above_rooftop],
        ["ARCore anchor to use", a.arcore.recommended]);
    }
    if (a.arkit) rows.push(["ARKit altitude (m above sea level)", a.arkit.altitude]);
    for (const [k, v] of Object.entries(a.properties || {})) rows.push([k, v]);
    if (a.accuracy) {
      const acc = a.accuracy;
      rows.push(["horizontal accuracy (1σ, m)", acc.horizontal_m ?? "not known"],
        ["vertical accuracy, ellipsoidal (1σ, m)", acc.vertical_m ?? "not known"],
        ["vertical accuracy, orthometric (1σ, m)", acc.vertical_orthometric_m ?? "not known"]);
      for (const part of acc.parts) {
        rows.push([`  ${part.source} (h, v m)`, `${part.horizontal_m ?? "?"}, ${part.vertical_m ?? "?"}`]);
      }
    } else {
      rows.push(...accuracyRows());
    }
    showInfo(a.name, rows);
  }

  // What a click asks about: a pin first, then a building, then anything else with properties.
  // LiDAR points lie on the roofs they sampled, so the first thing hit is often a point.
  function pickForInfo(position) {
    const hits = twin.viewer.scene.drillPick(position, 8);
    const isFeature = (h) => h instanceof Cesium.Cesium3DTileFeature;
    return hits.find((h) => h && h.id && h.id.twinAnchor)
      || hits.find((h) => isFeature(h) && (layerOf(h.tileset) || {}).kind === "buildings")
      || hits.find((h) => isFeature(h) && h.getPropertyIds().length > 0);
  }

  function layerOf(tileset) {
    return Object.values(twin.layers).find((l) => l.tileset === tileset);
  }

  // ---- measuring ------------------------------------------------------------------------------

  const measure = { on: false, points: [], entities: [] };
  twin.measure = measure;

  function toggleMeasure(on = !measure.on) {
    measure.on = on;
    $("measure").setAttribute("aria-pressed", String(on));
    if (on) clearMeasure();
  }

  function clearMeasure() {
    measure.points = [];
    measure.entities.forEach((e) => twin.viewer.entities.remove(e));
    measure.entities = [];
    $("measured").replaceChildren();
    measure.result = null;
  }

  // Differences in the local east-north-up frame at the first point (ellipsoidal heights).
  function measurement(a, b) {
    const enu = Cesium.Transforms.eastNorthUpToFixedFrame(a.position);
    const local = Cesium.Matrix4.multiplyByPoint(Cesium.Matrix4.inverse(enu, new Cesium.Matrix4()), b.position,
      new Cesium.Cartesian3());
    const ca = Cesium.Cartographic.fromCartesian(a.position);
    const cb = Cesium.Cartographic.fromCartesian(b.position);
    const out = { horizontal_m: Math.hypot(local.x, local.y), height_difference_m: cb.height - ca.height,
      distance_m: Cesium.Cartesian3.distance(a.position, b.position) };
    const building = [a, b].map((p) => p.building).find((x) => x);
    if (building) out.building = building;
    return out;
  }

  function measureClick(position) {
    const scene = twin.viewer.scene;
    const world = scene.pickPosition(position);
    if (!world) return;
    const picked = pickForInfo(position);
    const point = { position: world };
    if (picked instanceof Cesium.Cesium3DTileFeature && picked.getProperty("height") !== undefined) {
      point.building = { id: picked.getProperty("id"), name: picked.getProperty("name"),
        height_m: picked.getProperty("height") };
    }
    if (measure.points.length === 2) clearMeasure();
    measure.points.push(point);
    measure.entities.push(twin.viewer.entities.add({ position: world,
      point: { pixelSize: 8, color: Cesium.Color.YELLOW, disableDepthTestDistance: Number.POSITIVE_INFINITY } }));
    if (measure.points.length < 2) return;
    const [a, b] = measure.points;
    measure.entities.push(twin.viewer.entities.add({ polyline: {
      positions: [a.position, b.position], width: 2, material: Cesium.Color.YELLOW,
      depthFailMaterial: Cesium.Color.YELLOW.withAlpha(0.5) } }));
    measure.result = measurement(a, b);
    const rows = [["horizontal", `${measure.result.horizontal_m.toFixed(2)} m`],
      ["height difference", `${measure.result.height_difference_m.toFixed(2)} m`],
      ["straight line", `${measure.result.distance_m.toFixed(2)} m`]];
    if (measure.result.building) {
      const bld = measure.result.building;
      rows.push([`height of ${bld.name || bld.id}`, `${Number(bld.height_m).toFixed(2)} m (data)`]);
    }
    const dl = $("measured");
    dl.replaceChildren();
    for (const [k, v] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v;
      dl.append(dt, dd);
    }
    twin.viewer.scene.requestRender();
  }

  // ---- camera, URL state, PNG ------------------------------------------------------------------

  // Home: the district, seen from the south at 35 degrees: where most buildings stand (their
  // anchors' median, out to the distance that holds three quarters of them), so a far stadium or
  // park office does not push the view out; else the buildings layer, else the catalog's extent.
  function homeSphere() {
    const spots = twin.anchors.filter((a) => a.kind === "building")
      .map((a) => Cesium.Cartesian3.fromDegrees(a.longitude, a.latitude, a.ellipsoidal_height));
    if (spots.length) {
      const median = (k) => spots.map((p) => p[k]).sort((x, y) => x - y)[Math.floor(spots.length / 2)];
      const centre = new Cesium.Cartesian3(median("x"), median("y"), median("z"));
      const d = spots.map((p) => Cesium.Cartesian3.distance(p, centre)).sort((x, y) => x - y);
      return new Cesium.BoundingSphere(centre, Math.max(150, 1.2 * d[Math.floor(0.75 * (d.length - 1))]));
    }
    const buildings = Object.values(twin.layers).find((l) => l.kind === "buildings" && l.tileset);
    if (buildings) return buildings.tileset.boundingSphere;
    const [w, s, , e, n] = twin.bbox;
    const centre = Cesium.Cartesian3.fromDegrees((w + e) / 2, (s + n) / 2, twin.groundHeight);
    return new Cesium.BoundingSphere(centre, Cesium.Cartesian3.distance(
      Cesium.Cartesian3.fromDegrees(w, s), Cesium.Cartesian3.fromDegrees(e, n)) / 2);
  }

  twin.goHome = (duration = 0) => {
    const sphere = homeSphere();
    twin.viewer.camera.flyToBoundingSphere(sphere, { duration,
      offset: new Cesium.HeadingPitchRange(0, Cesium.Math.toRadians(-35), sphere.radius * 2.2) });
  };

  function saveState() {
    if (!twin.viewer || twin.restoring) return;
    const c = twin.viewer.camera;
    const carto = c.positionCartographic;
    const p = new URLSearchParams();
    p.set("cam", [Cesium.Math.toDegrees(carto.longitude).toFixed(7), Cesium.Math.toDegrees(carto.latitude).toFixed(7),
      carto.height.toFixed(2), Cesium.Math.toDegrees(c.heading).toFixed(3), Cesium.Math.toDegrees(c.pitch).toFixed(3),
      Cesium.Math.toDegrees(c.roll).toFixed(3)].join(","));
    p.set("t", `${$("date").value}T${$("time").value}`);
    p.set("colour", twin.state.colour);
    if (twin.state.hidden.size) p.set("hide", [...twin.state.hidden].join(","));
    if (twin.state.proposals.size) p.set("proposals", [...twin.state.proposals].join(","));
    history.replaceState(null, "", `#${p.toString()}`);
  }
  twin.saveState = saveState;

  function readState() {
    const p = new URLSearchParams(location.hash.slice(1));
    const out = {};
    const cam = (p.get("cam") || "").split(",").map(Number);
    if (cam.length === 6 && cam.every(Number.isFinite)) out.camera = cam;
    const t = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})$/.exec(p.get("t") || "");
    if (t) out.time = [t[1], t[2]];
    if (["none", "use", "height", "roof_type", "surface"].includes(p.get("colour"))) out.colour = p.get("colour");
    out.hidden = new Set((p.get("hide") || "").split(",").filter(Boolean));
    out.proposals = new Set((p.get("proposals") || "").split(",").filter(Boolean));
    return out;
  }

  twin.savePng = () => new Promise((resolve) => {
    twin.viewer.render();
    twin.viewer.canvas.toBlob((blob) => {
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = `dmc-twin-${$("date").value}-${$("time").value.replace(":", "")}.png`;
      document.body.append(a);
      a.click();
      a.remove();
      resolve(blob.size);
    }, "image/png");
  });

  // World position (degrees, ellipsoidal m) -> page coordinates (CSS px), for tests and tools.
  twin.toPage = (lon, lat, h) => {
    const xy = Cesium.SceneTransforms.worldToWindowCoordinates(twin.viewer.scene,
      Cesium.Cartesian3.fromDegrees(lon, lat, h));
    if (!xy) return null;
    const r = twin.viewer.canvas.getBoundingClientRect();
    return [r.left + xy.x, r.top + xy.y];
  };

  // Resolves once every shown layer has loaded what the view needs (steady for a few frames).
  twin.settle = async (seconds = 120) => {
    let steady = 0;
    for (const end = Date.now() + seconds * 1000; Date.now() < end && steady < 3;) {
      twin.viewer.render();
      await new Promise((r) => setTimeout(r, 50));
      const busy = Object.values(twin.layers).some((l) => l.tileset && l.tileset.show && !l.tileset.tilesLoaded);
      steady = busy ? 0 : steady + 1;
    }
    if (steady < 3) throw new Error(`tiles still loading after ${seconds} s`);
  };

  // ---- start ----------------------------------------------------------------------------------

  // The orthophoto publish wrote (stages.publish.viewer.imagery), on the site's east-north plane,
  // painted onto the terrain layer by its position: ENU from the fragment's ECEF position. (CesiumJS
  // 1.145 drapes imagery layers on tilesets, but misplaces it on y-up glTF under a root transform.)
  // ECEF positions are float32 on the GPU, so the photo sits within about half a metre.
  function orthophotoShader(imagery) {
    const enuToEcef = Cesium.Matrix4.fromArray(imagery.enu_to_ecef.flat(), 0, new Cesium.Matrix4());
    Cesium.Matrix4.transpose(enuToEcef, enuToEcef);  // settings.json holds rows; Cesium reads columns
    const [w, s, e, n] = imagery.enu_bounds;
    return new Cesium.CustomShader({
      uniforms: {
        u_orthophoto: { type: Cesium.UniformType.SAMPLER_2D,
          value: new Cesium.TextureUniform({ url: new URL(imagery.href, document.baseURI).href }) },
        u_ecefToEnu: { type: Cesium.UniformType.MAT4,
          value: Cesium.Matrix4.inverseTransformation(enuToEcef, new Cesium.Matrix4()) },
        u_bounds: { type: Cesium.UniformType.VEC4, value: new Cesium.Cartesian4(w, s, e, n) },
      },
      fragmentShaderText: `
        void fragmentMain(FragmentInput fsInput, inout czm_modelMaterial material) {
          vec3 enu = (u_ecefToEnu * vec4(fsInput.attributes.positionWC, 1.0)).xyz;
          vec2 uv = (enu.xy - u_bounds.xy) / (u_bounds.zw - u_bounds.xy);
          if (all(greaterThanEqual(uv, vec2(0.0))) && all(lessThanEqual(uv, vec2(1.0)))) {
            material.diffuse = texture(u_orthophoto, uv).rgb;
          }
        }`,
    });
  }

  function makeViewer() {
    const viewer = new Cesium.CesiumWidget("view", {
      baseLayer: false,
      terrainProvider: new Cesium.EllipsoidTerrainProvider(),
      shadows: true, requestRenderMode: true, maximumRenderTimeChange: Infinity,
      contextOptions: { webgl: { preserveDrawingBuffer: true } },
    });
    const scene = viewer.scene;
    scene.globe.baseColor = Cesium.Color.fromCssColorString("#c8ccc4");
    scene.globe.enableLighting = true;
    scene.globe.depthTestAgainstTerrain = false;
    // the plain globe lies under the terrain layer: shadows on it would only outline that layer
    scene.globe.shadows = Cesium.ShadowMode.DISABLED;
    scene.moon.show = false;
    scene.skyBox.show = false;
    scene.backgroundColor = Cesium.Color.fromCssColorString("#9ab8d6");
    viewer.clock.shouldAnimate = false;
    // Shadows over a district of about 1 km: cascades over 2 km of a 4096 px map, filtered (soft)
    // so their edges do not stair-step. Filtering samples the map around each point, which with
    // Cesium's default bias for 3D Tiles (depth 2e-5, normal offset 0.1) stripes every lit
    // surface ("shadow acne"), worst in the far cascades of an oblique view; the bias below
    // (the smallest that removed it in every view tried) keeps ground and walls clean at the
    // winter sun's low angles, checked on software-rendered screenshots (SwiftShader, Mesa's
    // llvmpipe: tests/test_sample_viewer.py).
    const shadows = scene.shadowMap;
    shadows.size = 4096;
    shadows.maximumDistance = 2000;
    shadows.softShadows = true;
    shadows.darkness = 0.45;
    shadows.normalOffset = true;
    shadows._primitiveBias.depthBias = 0.0005;
    shadows._primitiveBias.normalOffsetScale = 1.0;
    return viewer;
  }

  async function start() {
    const [catalog, root, settings] = await Promise.all([getJson("catalog.json"), getJson("tileset.json"),
      fetch("settings.json").then((r) => (r.ok ? r.json() : {}))]);
    twin.catalog = catalog;
    twin.settings = settings;
    $("title").textContent = catalog.title || "Digital twin";
    document.title = `${catalog.title || "Digital twin"} — dmc-twin`;
    twin.bbox = catalog.extent.spatial.bbox[0];
    twin.groundHeight = twin.bbox.length === 6 ? twin.bbox[2] : 0;
    const state = readState();
    twin.state.hidden = state.hidden;
    twin.state.proposals = state.proposals;
    twin.viewer = makeViewer();
    twin.restoring = true;

    const anchorsAsset = (catalog.assets || {}).anchors;
    if (anchorsAsset) {
      const doc = await getJson(anchorsAsset.href);
      twin.anchors = doc.anchors;
      twin.accuracy = doc.accuracy;
      // format 2.0 names the model (and its accuracy); 1.0 only the grid file
      twin.geoid = doc.geoid ? `${doc.geoid.name}${doc.geoid.version ? ` (${doc.geoid.version})` : ""}, `
        + `${doc.geoid.source}` : doc.geoid_grid;
      twin.proposals = doc.anchors.filter((a) => a.kind === "building" && a.properties && a.properties.proposed)
        .map((a) => ({ id: a.feature ? a.feature.building_id : a.id, name: a.name,
          replaces: a.properties.replaces || null }));
      drawAnchors(doc);
    }
    const sunData = (catalog.assets || {}).sunlight_data;
    if (sunData) {
      twin.sunlight = await getJson(sunData.href);
      const [lo, hi] = twin.sunlight.settings.rule.total_window_h;
      twin.sunlightFullHours = hi - lo;
      const report = (catalog.assets || {}).sunlight_report;
      if (report) $("sun-report").href = new URL(report.href, BUNDLE).href;
    }
    for (const layer of layerList(catalog, root)) {
      layer.loaded = false;
      layer.tilesLoaded = 0;
      twin.layers[layer.name] = layer;
    }
    await Promise.all(Object.values(twin.layers).map(loadLayer));
    drawLayerToggles();
    drawProposals();

    const [year] = new Date().toISOString().split("-");
    const [date, time] = state.time || [solsticeDateKst(Number(year), "winter"), "12:00"];
    $("date").value = date;
    $("time").value = time;
    viewer().clock.currentTime = kstToJulian(date, time);
    twin.state.colour = state.colour || "use";
    $("colour").value = twin.state.colour;
    restyleQuiet();
    if (state.camera) {
      const [lon, lat, h, heading, pitch, roll] = state.camera;
      viewer().camera.setView({ destination: Cesium.Cartesian3.fromDegrees(lon, lat, h),
        orientation: { heading: Cesium.Math.toRadians(heading), pitch: Cesium.Math.toRadians(pitch),
          roll: Cesium.Math.toRadians(roll) } });
    } else {
      twin.goHome(0);
    }
    twin.restoring = false;
    wireControls();
    saveState();
    setStatus(`${Object.keys(twin.layers).length} layers, ${twin.anchors.length} anchors`);
  }

  function viewer() { return twin.viewer; }

  function restyleQuiet() {
    twin.restoring = true;
    restyle();
    twin.restoring = false;
  }

  function wireControls() {
    const v = viewer();
    $("home").addEventListener("click", () => twin.goHome(1.5));
    $("share").addEventListener("click", () => {
      saveState();
      if (navigator.clipboard) navigator.clipboard.writeText(location.href).catch(() => {});
      setStatus("Link to this view copied (also in the address bar)");
    });
    $("png").addEventListener("click", () => twin.savePng());
    $("colour").addEventListener("change", () => twin.setColour($("colour").value));
    const onTime = () => { if ($("date").value && $("time").value) twin.setTime($("date").value, $("time").value); };
    $("date").addEventListener("change", onTime);
    $("time").addEventListener("change", onTime);
    for (const b of document.querySelectorAll("#presets button")) {
      b.addEventListener("click", () => {
        const year = Number(($("date").value || new Date().toISOString()).slice(0, 4));
        twin.setTime(solsticeDateKst(year, b.dataset.preset), b.dataset.time);
      });
    }
    $("measure").addEventListener("click", () => toggleMeasure());
    v.camera.moveEnd.addEventListener(saveState);
    v.screenSpaceEventHandler.setInputAction((click) => {
      if (measure.on) { measureClick(click.position); return; }
      const picked = pickForInfo(click.position);
      if (picked && picked.id && picked.id.twinAnchor) showAnchor(picked.id.twinAnchor);
      else if (picked instanceof Cesium.Cesium3DTileFeature) showFeature(picked, layerOf(picked.tileset));
      else { $("info").hidden = true; twin.info = null; }
    }, Cesium.ScreenSpaceEventType.LEFT_CLICK);
  }

  twin.ready = start().then(() => true, (err) => {
    setStatus(`Could not open the twin: ${err.message}`, true);
    twin.errors.push(String(err));
    return false;
  });
})();
