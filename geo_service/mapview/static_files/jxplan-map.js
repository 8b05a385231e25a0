/* Plan layers of the jxplan maps: fetch features from the OGC API, style them, explain them in popups.
 *
 * Every text from the data is put into the page with textContent, never as HTML, so feature properties
 * cannot inject markup. `window.jxplanLoaded` counts the layers that finished loading (or failed) and
 * `window.jxplanLayers[id]` tells how each went; the legend shows the same counts.
 */
(function () {
  "use strict";

  var config = {
    statusLabels: {},
    accuracyLabels: {},
    statusDash: {},
    schematicOpacity: 0.6,
    fieldLabels: {},
  };
  var layers = {};
  var state = {};
  var maxPages = 10000;

  window.jxplanLoaded = 0;
  window.jxplanLayers = state;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function label(key) {
    return config.fieldLabels[key] || key;
  }

  function present(value) {
    return value !== undefined && value !== null && value !== "";
  }

  /* Only absolute http(s) addresses become links: a javascript: URL in the data must not be clickable. */
  function safeHref(url) {
    if (!/^https?:\/\//i.test(String(url))) return null;
    try {
      return new URL(String(url)).href;
    } catch (e) {
      return null;
    }
  }

  function featureColor(props, style) {
    if (style.by && props && present(props[style.by])) {
      var color = style.colors[String(props[style.by])];
      if (color) return color;
    }
    return style.color;
  }

  function pathOptions(feature, cfg) {
    var style = cfg.style;
    var props = feature.properties || {};
    var color = featureColor(props, style);
    var faded = props.accuracy === "schematic";
    var opacity = faded ? config.schematicOpacity : 1;
    var dash = config.statusDash[props.status];
    return {
      pane: cfg.pane,
      className: "jxplan-feature jxplan-layer-" + cfg.id,
      color: color,
      fillColor: style.fillColor || color,
      weight: style.weight,
      opacity: opacity,
      fillOpacity: style.fillOpacity * opacity,
      dashArray: dash || null,
      lineCap: dash ? "butt" : "round",
    };
  }

  function row(dl, key, value) {
    dl.appendChild(el("dt", null, label(key)));
    var dd = el("dd");
    if (value instanceof Node) dd.appendChild(value);
    else dd.textContent = String(value);
    dl.appendChild(dd);
  }

  function statusText(props) {
    var text = config.statusLabels[props.status] || props.status;
    return present(props.status_date) ? text + " (" + props.status_date + ")" : text;
  }

  function accuracyText(props) {
    var text = config.accuracyLabels[props.accuracy] || props.accuracy;
    return present(props.accuracy_m) ? text + " ±" + props.accuracy_m + " m" : text;
  }

  /* `source_url` may hold several addresses separated by "|"; each becomes a link named by its host. */
  function sourceNode(props) {
    var box = el("span");
    if (present(props.source)) box.appendChild(document.createTextNode(String(props.source)));
    var urls = present(props.source_url) ? String(props.source_url).split(/\s*\|\s*|\s+/) : [];
    var hrefs = urls.map(safeHref).filter(Boolean);
    hrefs.forEach(function (href) {
      var link = el("a", "jx-source-link", new URL(href).hostname);
      link.href = href;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      box.appendChild(document.createTextNode(" "));
      box.appendChild(link);
    });
    if (!box.childNodes.length) box.textContent = String(props.source_url);
    return box;
  }

  function planQuote(props) {
    var quote = el("blockquote", "jx-plan-text");
    quote.appendChild(el("p", null, props.plan_text));
    var cite = [props.plan_section, props.plan_source].filter(present).join(" · ");
    if (cite) quote.appendChild(el("footer", null, cite));
    return quote;
  }

  function popupContent(feature, cfg) {
    var props = feature.properties || {};
    var box = el("div", "jx-popup");
    box.appendChild(el("div", "jx-popup-layer", cfg.title));
    box.appendChild(el("strong", "jx-popup-name", present(props.name_zh) ? props.name_zh : props.code));
    if (present(props.name_en)) box.appendChild(el("div", "jx-popup-name-en", props.name_en));
    var head = el("dl", "jx-popup-fields");
    if (present(props.category)) row(head, "category", props.category);
    if (present(props.status)) row(head, "status", statusText(props));
    box.appendChild(head);
    if (present(props.plan_text)) {
      box.appendChild(el("div", "jx-popup-caption", label("plan_text")));
      box.appendChild(planQuote(props));
    }
    var rest = el("dl", "jx-popup-fields");
    if (present(props.accuracy)) row(rest, "accuracy", accuracyText(props));
    if (present(props.source) || present(props.source_url)) row(rest, "source", sourceNode(props));
    if (Array.isArray(props.aliases) && props.aliases.length) row(rest, "aliases", props.aliases.join("、"));
    if (present(props.note)) row(rest, "note", props.note);
    box.appendChild(rest);
    if (feature.id !== undefined && feature.id !== null) {
      var details = el("a", "jx-popup-details", label("details"));
      details.href =
        "/collections/" + encodeURIComponent(cfg.id) + "/items/" + encodeURIComponent(String(feature.id));
      box.appendChild(details);
    }
    return box;
  }

  function tooltipContent(feature) {
    var props = feature.properties || {};
    return el("span", null, [props.name_zh, props.name_en].filter(present).join(" "));
  }

  function nextPage(page, current) {
    var links = (page && page.links) || [];
    for (var i = 0; i < links.length; i++) {
      var link = links[i];
      if (link.rel === "next" && link.href && (!link.type || /json/.test(link.type))) {
        return new URL(link.href, current).href;
      }
    }
    return null;
  }

  async function fetchAll(url, onPage) {
    var seen = {};
    for (var count = 0; url && !seen[url] && count < maxPages; count++) {
      seen[url] = true;
      var response = await fetch(url, {
        headers: { Accept: "application/geo+json, application/json" },
        credentials: "same-origin",
      });
      if (!response.ok) throw new Error("HTTP " + response.status + " " + url);
      var page = await response.json();
      onPage(page);
      url = nextPage(page, url);
    }
  }

  function showCount(id) {
    var info = state[id];
    var nodes = document.querySelectorAll('[data-count-for="' + id + '"]');
    nodes.forEach(function (node) {
      if (info.state === "error") {
        node.textContent = "加载失败 failed";
        node.classList.add("jx-error");
        node.title = info.error;
      } else {
        node.textContent = info.state === "done" ? String(info.drawn) : "…";
        if (info.skipped) node.title = "无位置 without location: " + info.skipped;
      }
    });
  }

  function finish(id, outcome, error) {
    state[id].state = outcome;
    if (error) state[id].error = String(error);
    window.jxplanLoaded += 1;
    showCount(id);
    document.dispatchEvent(new CustomEvent("jxplan:layerloaded", { detail: { id: id, state: state[id] } }));
  }

  /* Every feature of the layer, fetched page by page and drawn as vectors (small layers). */
  function geojsonLayer(cfg) {
    var group = L.geoJSON(null, {
      pane: cfg.pane,
      style: function (feature) {
        return pathOptions(feature, cfg);
      },
      pointToLayer: function (feature, latlng) {
        var options = pathOptions(feature, cfg);
        options.radius = cfg.style.radius;
        options.fillOpacity = Math.max(options.fillOpacity, 0.85 * options.opacity);
        return L.circleMarker(latlng, options);
      },
      onEachFeature: function (feature, layer) {
        state[cfg.id].drawn += 1;
        layer.bindPopup(function () {
          return popupContent(feature, cfg);
        }, { maxWidth: 380, maxHeight: 420, className: "jx-popup-wrap" });
        layer.bindTooltip(tooltipContent(feature), { sticky: true, className: "jx-tooltip" });
      },
    });
    var start = new URL(cfg.items, document.baseURI).href;
    var loaded = fetchAll(start, function (page) {
      // counted here: Leaflet's addData drops features without geometry before any filter sees them
      var features = page.features || [];
      var located = features.filter(function (feature) {
        return Boolean(feature.geometry);
      });
      state[cfg.id].features += features.length;
      state[cfg.id].skipped += features.length - located.length;
      group.addData(located);
    });
    return { layer: group, loaded: loaded };
  }

  var tileLayers = [];

  function popupAt(map, latlng, feature, cfg) {
    L.popup({ maxWidth: 380, maxHeight: 420, className: "jx-popup-wrap" })
      .setLatLng(latlng)
      .setContent(popupContent(feature, cfg))
      .openOn(map);
  }

  /* A click on the map where no vector feature was hit asks the server which feature of a tiled layer lies
   * there (a box of a few pixels around the click), the topmost layer first, and explains it in a popup.
   * Tiles carry only a few properties; the popup shows the whole feature, as on the GeoJSON layers. */
  async function identify(map, event) {
    if (event.originalEvent && event.originalEvent.target && event.originalEvent.target.closest &&
        event.originalEvent.target.closest(".jxplan-feature")) return;
    var shown = tileLayers
      .filter(function (entry) {
        return map.hasLayer(entry.holder);
      })
      .sort(function (a, b) {
        return b.cfg.style.zIndex - a.cfg.style.zIndex;
      });
    var point = map.latLngToContainerPoint(event.latlng);
    var pad = 6;
    var sw = map.containerPointToLatLng([point.x - pad, point.y + pad]);
    var ne = map.containerPointToLatLng([point.x + pad, point.y - pad]);
    var bbox = [sw.lng, sw.lat, ne.lng, ne.lat].map(function (n) {
      return n.toFixed(7);
    }).join(",");
    for (var i = 0; i < shown.length; i++) {
      var url = new URL(shown[i].cfg.items, document.baseURI);
      url.searchParams.set("bbox", bbox);
      url.searchParams.set("limit", "1");
      var response = await fetch(url.href, { headers: { Accept: "application/geo+json" }, credentials: "same-origin" });
      if (!response.ok) continue;
      var page = await response.json();
      var feature = (page.features || [])[0];
      if (feature) {
        popupAt(map, event.latlng, feature, shown[i].cfg);
        return;
      }
    }
  }

  /* Vector tiles of the layer (large layers): only what is in view is fetched and drawn. */
  function tileLayer(map, cfg, holder, matched) {
    var styles = {};
    var points = /Point/.test(cfg.geometryType);
    styles[cfg.id] = function (properties) {
      var options = pathOptions({ properties: properties }, cfg);
      options.fill = points || /Polygon/.test(cfg.geometryType);
      if (points) {
        options.radius = cfg.style.radius;
        options.fillOpacity = Math.max(options.fillOpacity, 0.85 * options.opacity);
      }
      return options;
    };
    var template = new URL(cfg.tiles, document.baseURI).href.replace(/%7B/g, "{").replace(/%7D/g, "}");
    var grid = L.vectorGrid.protobuf(template, {
      pane: cfg.pane,
      interactive: false,
      maxNativeZoom: 22,
      rendererFactory: L.canvas.tile,
      vectorTileLayerStyles: styles,
    });
    if (!tileLayers.length) {
      map.on("click", function (event) {
        identify(map, event).catch(function (error) {
          if (window.console) console.error("jxplan: identify failed:", error);
        });
      });
    }
    tileLayers.push({ holder: holder, cfg: cfg });
    state[cfg.id].mode = "tiles";
    state[cfg.id].features = matched;
    state[cfg.id].drawn = matched;
    return grid;
  }

  /* How many features the layer holds, from the server's numberMatched (null if it does not say). */
  async function layerSize(cfg) {
    var url = new URL(cfg.items, document.baseURI);
    url.searchParams.set("limit", "1");
    var response = await fetch(url.href, {
      headers: { Accept: "application/geo+json" },
      credentials: "same-origin",
    });
    if (!response.ok) throw new Error("HTTP " + response.status + " " + url.href);
    var page = await response.json();
    return typeof page.numberMatched === "number" ? page.numberMatched : null;
  }

  /* A plan layer: a group that receives either the GeoJSON features or the vector tiles. */
  function planLayer(map, cfg) {
    var pane = "jxplan-" + cfg.id;
    if (!map.getPane(pane)) map.createPane(pane).style.zIndex = String(cfg.style.zIndex);
    cfg.pane = pane;
    state[cfg.id] = { state: "loading", mode: "geojson", features: 0, drawn: 0, skipped: 0 };
    var holder = L.layerGroup();
    layers[cfg.id] = holder;
    var chosen;
    if (cfg.source === "geojson") chosen = Promise.resolve(null);
    else chosen = layerSize(cfg);
    chosen
      .then(function (size) {
        var tiles = cfg.source === "tiles" || (cfg.source === "auto" && size !== null && size > cfg.tileThreshold);
        if (tiles) {
          holder.addLayer(tileLayer(map, cfg, holder, size));
          return null;
        }
        var made = geojsonLayer(cfg);
        holder.addLayer(made.layer);
        return made.loaded;
      })
      .then(
        function () {
          finish(cfg.id, "done");
        },
        function (error) {
          finish(cfg.id, "error", error);
          if (window.console) console.error("jxplan: layer " + cfg.id + " failed to load:", error);
        }
      );
    return holder;
  }

  var LegendControl = L.Control.extend({
    options: { position: "bottomleft" },
    onAdd: function () {
      var node = document.getElementById(this.options.elementId);
      node.hidden = false;
      L.DomEvent.disableClickPropagation(node);
      L.DomEvent.disableScrollPropagation(node);
      return node;
    },
  });

  function legend(map, elementId) {
    new LegendControl({ elementId: elementId }).addTo(map);
    Object.keys(state).forEach(showCount);
    /* Dim the legend rows of layers switched off in the layer control. */
    function toggle(event) {
      Object.keys(layers).forEach(function (id) {
        if (layers[id] !== event.layer) return;
        var rows = document.querySelectorAll('.jx-legend-layer[data-layer="' + id + '"]');
        rows.forEach(function (rowNode) {
          rowNode.classList.toggle("jx-off", event.type === "overlayremove");
        });
      });
    }
    map.on("overlayadd overlayremove", toggle);
    Object.keys(layers).forEach(function (id) {
      if (!map.hasLayer(layers[id])) toggle({ layer: layers[id], type: "overlayremove" });
    });
  }

  function setup(map, pageConfig) {
    config = pageConfig;
    window.jxplanMap = map;
    L.control.scale({ imperial: false, position: "bottomleft" }).addTo(map);
  }

  window.jxplan = { setup: setup, planLayer: planLayer, legend: legend, layers: layers, state: state };
})();
