/* Plan layers of the jxplan maps: fetch features from the OGC API, style them, explain them in popups.
 *
 * Every text from the data is put into the page with textContent, never as HTML, so feature properties
 * cannot inject markup. `window.jxplanLoaded` counts the layers that finished loading (or failed) and
 * `window.jxplanLayers[id]` tells how each went; the legend shows the same counts.
 *
 * Every page also has a search box (name, English name, code or alias of the loaded features; name, English
 * name and code of tiled layers' features, asked of the server) and a status filter ("plan vs now": planned /
 * under construction / completed or existing) over both kinds of layer.
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
  // Every drawn GeoJSON feature: {feature, layer (Leaflet), cfg, group}; searched and filtered.
  var entries = [];
  // Statuses the filter hides; the groups of the filter control and the statuses each stands for.
  var hiddenStatuses = {};
  var STATUS_GROUPS = [
    { key: "planned", statuses: ["planned"] },
    { key: "under_construction", statuses: ["under_construction"] },
    { key: "completed", statuses: ["completed", "existing"] },
  ];
  var theMap = null;
  var configs = {};
  // What a click on a plan feature does while a tool is active: null (its popup), {pick: fn(feature, cfg)}
  // (the tool takes the feature) or {draw: true} (nothing: the tool is drawing).
  var clickMode = null;

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
      className:
        "jxplan-feature jxplan-layer-" + cfg.id + (present(props.status) ? " jxplan-status-" + props.status : ""),
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
      var path = "/collections/" + encodeURIComponent(cfg.id) + "/items/" + encodeURIComponent(String(feature.id));
      var details = el("a", "jx-popup-details", label("details"));
      details.href = path;
      box.appendChild(details);
      var mapLink = el("a", "jx-popup-map", "地图 Map");
      mapLink.href = path + "/map";
      box.appendChild(document.createTextNode(" "));
      box.appendChild(mapLink);
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
        var shown = info.shown === undefined ? info.drawn : info.shown;
        node.textContent = info.state !== "done" ? "…" : shown === info.drawn ? String(info.drawn) : shown + " / " + info.drawn;
        if (info.skipped) node.title = "无位置 without location: " + info.skipped;
      }
    });
  }

  function finish(id, outcome, error) {
    state[id].state = outcome;
    if (error) state[id].error = String(error);
    window.jxplanLoaded += 1;
    showCount(id);
    if (outcome === "done") focusIfAsked(id);
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
        entries.push({ feature: feature, layer: layer, cfg: cfg, group: group });
        layer.bindPopup(function () {
          return popupContent(feature, cfg);
        }, { maxWidth: 380, maxHeight: 420, className: "jx-popup-wrap" });
        layer.bindTooltip(tooltipContent(feature), { sticky: true, className: "jx-tooltip" });
        // While a tool is active (site check) a click goes to the tool, not to the popup. The popup's own
        // click handler is wrapped rather than removed: Geoman takes it off and puts it back around drawing.
        var openPopup = layer._openPopup;
        layer._openPopup = function (event) {
          var taken = event && event.originalEvent && event.originalEvent._jxplanTaken;
          if (clickMode || taken) return; // drawing: the click goes on to the map, where the tool takes it
          openPopup.call(layer, event);
        };
        layer.off("click", openPopup, layer);
        layer.on("click", layer._openPopup, layer);
        layer.on("click", function (event) {
          if (!clickMode || !clickMode.pick) return;
          L.DomEvent.stop(event);
          if (event.originalEvent) event.originalEvent._jxplanTaken = true;
          clickMode.pick(feature, cfg);
        });
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
      applyFilter();
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
    if (clickMode && !clickMode.pick) return; // a tool is drawing on the map
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
      var shownOnly = statusCondition(shown[i].cfg);
      if (shownOnly) url.searchParams.set("filter", shownOnly);
      var response = await fetch(url.href, { headers: { Accept: "application/geo+json" }, credentials: "same-origin" });
      if (!response.ok) continue;
      var page = await response.json();
      var feature = (page.features || [])[0];
      if (feature) {
        if (clickMode && clickMode.pick) clickMode.pick(feature, shown[i].cfg);
        else popupAt(map, event.latlng, feature, shown[i].cfg);
        return;
      }
    }
  }

  /* Vector tiles of the layer (large layers): only what is in view is fetched and drawn. */
  function tileLayer(map, cfg, holder, matched) {
    var styles = {};
    var points = /Point/.test(cfg.geometryType);
    styles[cfg.id] = function (properties) {
      // a feature whose status the filter hides is not drawn (an empty list of symbolizers)
      if (cfg.statusFilter && present(properties.status) && hiddenStatuses[properties.status]) return [];
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
    tileLayers.push({ holder: holder, cfg: cfg, grid: grid, asked: 0 });
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
    configs[cfg.id] = cfg;
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

  /* ---- status filter ("plan vs now") ---- */

  /* The CQL2 condition that keeps the features the filter shows (null when it hides nothing). The statuses
   * are the filter's own identifiers, never text from the page. */
  function statusCondition(cfg) {
    if (!cfg.statusFilter) return null;
    var hidden = Object.keys(hiddenStatuses).sort();
    if (!hidden.length) return null;
    var quoted = hidden.map(function (status) {
      return "'" + status + "'";
    });
    return "status IS NULL OR status NOT IN (" + quoted.join(", ") + ")";
  }

  /* A tiled layer after a filter change: its tiles drawn again without the hidden statuses, and its legend
   * count asked of the server (numberMatched of the filtered items); a late answer to an older filter is
   * dropped. */
  function refilterTiles(entry) {
    var cfg = entry.cfg;
    if (!cfg.statusFilter) return;
    entry.grid.redraw();
    var info = state[cfg.id];
    var condition = statusCondition(cfg);
    var asked = ++entry.asked;
    if (!condition) {
      delete info.shown;
      showCount(cfg.id);
      return;
    }
    var url = new URL(cfg.items, document.baseURI);
    url.searchParams.set("limit", "1");
    url.searchParams.set("filter", condition);
    fetch(url.href, { headers: { Accept: "application/geo+json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status + " " + url.href);
        return response.json();
      })
      .then(function (page) {
        if (asked !== entry.asked) return;
        info.shown = typeof page.numberMatched === "number" ? page.numberMatched : undefined;
        showCount(cfg.id);
      })
      .catch(function (error) {
        if (window.console) console.error("jxplan: count of " + cfg.id + " failed:", error);
      });
  }

  function filteredOut(entry) {
    var status = (entry.feature.properties || {}).status;
    return Boolean(entry.cfg.statusFilter && present(status) && hiddenStatuses[status]);
  }

  /* Takes hidden features out of their layer and puts shown ones back; the legend counts and rows follow. */
  function applyFilter() {
    var shown = {};
    entries.forEach(function (entry) {
      var hide = filteredOut(entry);
      var has = entry.group.hasLayer(entry.layer);
      if (hide && has) {
        if (entry.layer.isPopupOpen && entry.layer.isPopupOpen()) entry.layer.closePopup();
        entry.group.removeLayer(entry.layer);
      } else if (!hide && !has) {
        entry.group.addLayer(entry.layer);
      }
      shown[entry.cfg.id] = (shown[entry.cfg.id] || 0) + (hide ? 0 : 1);
    });
    Object.keys(state).forEach(function (id) {
      if (state[id].mode !== "geojson") return;
      state[id].shown = shown[id] || 0;
      showCount(id);
    });
    document.querySelectorAll(".jx-legend [data-statuses]").forEach(function (node) {
      var statuses = node.getAttribute("data-statuses").split(" ").filter(Boolean);
      node.classList.toggle(
        "jx-off",
        statuses.length > 0 &&
          statuses.every(function (status) {
            return hiddenStatuses[status];
          })
      );
    });
  }

  /* Show (true) or hide (false) the features of one status group, as the filter's checkbox does. */
  function setStatusGroup(key, visible) {
    var before = statusCondition({ statusFilter: true });
    STATUS_GROUPS.forEach(function (group) {
      if (group.key !== key) return;
      group.statuses.forEach(function (status) {
        if (visible) delete hiddenStatuses[status];
        else hiddenStatuses[status] = true;
      });
    });
    document.querySelectorAll('.jx-filter input[data-group="' + key + '"]').forEach(function (box) {
      box.checked = visible;
    });
    applyFilter();
    if (statusCondition({ statusFilter: true }) !== before) tileLayers.forEach(refilterTiles);
  }

  var FilterControl = L.Control.extend({
    options: { position: "topright" },
    onAdd: function () {
      var box = el("fieldset", "jx-filter leaflet-bar");
      var legendNode = el("legend", "jx-filter-title", "规划与现状 ");
      legendNode.appendChild(el("span", "jx-en", "Plan vs now"));
      box.appendChild(legendNode);
      STATUS_GROUPS.forEach(function (group) {
        var labelNode = el("label", "jx-filter-option");
        var input = el("input");
        input.type = "checkbox";
        input.checked = true;
        input.setAttribute("data-group", group.key);
        input.addEventListener("change", function () {
          setStatusGroup(group.key, input.checked);
        });
        labelNode.appendChild(input);
        var text = group.statuses
          .map(function (status) {
            return config.statusLabels[status] || status;
          })
          .join(" / ");
        labelNode.appendChild(el("span", null, " " + text));
        box.appendChild(labelNode);
      });
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      return box;
    },
  });

  /* ---- search by name ---- */

  function fold(text) {
    return String(text).toLowerCase().replace(/\s+/g, "");
  }

  function searchTerms(props) {
    var terms = [props.name_zh, props.name_en, props.code, props.name_current];
    if (Array.isArray(props.aliases)) terms = terms.concat(props.aliases);
    return terms.filter(present).map(fold);
  }

  /* How well a feature's terms match the folded query: 0 exact, 1 prefix, 2 inside, 3 not at all. */
  function rankOf(props, q) {
    var rank = 3;
    searchTerms(props).forEach(function (term) {
      if (term === q) rank = Math.min(rank, 0);
      else if (term.indexOf(q) === 0) rank = Math.min(rank, 1);
      else if (term.indexOf(q) > 0) rank = Math.min(rank, 2);
    });
    return rank;
  }

  /* Best matches first; equal matches keep the page's layer order, then code order (not the order in which
   * layers finished loading or the server answered). */
  function ordered(found, limit) {
    var order = Object.keys(layers);
    found.sort(function (a, b) {
      var byLayer = order.indexOf(a.entry.cfg.id) - order.indexOf(b.entry.cfg.id);
      var codeA = String(a.entry.feature.properties.code || "");
      var codeB = String(b.entry.feature.properties.code || "");
      return a.rank - b.rank || byLayer || (codeA < codeB ? -1 : codeA > codeB ? 1 : 0);
    });
    return found.slice(0, limit || 10).map(function (item) {
      return item.entry;
    });
  }

  function localMatches(query) {
    var q = fold(query || "");
    if (!q) return [];
    var found = [];
    entries.forEach(function (entry) {
      var rank = rankOf(entry.feature.properties || {}, q);
      if (rank < 3) found.push({ rank: rank, entry: entry });
    });
    return found;
  }

  /* The loaded features whose name, English name, code or alias contains the query, best matches first. */
  function search(query, limit) {
    return ordered(localMatches(query), limit);
  }

  /* The features of the tiled layers (not in the page) whose name, English name or code contains the query,
   * case-insensitively: one CQL2 request per layer, at most `limit` each, features without location left out. */
  function remoteMatches(query, limit) {
    var text = String(query || "").trim();
    var q = fold(text);
    if (!q) return Promise.resolve([]);
    // the query is a CQL2 LIKE pattern's text: its own wildcards and escape character are escaped
    var pattern = "%" + text.replace(/[\\%_]/g, "\\$&") + "%";
    var asks = tileLayers
      .filter(function (entry) {
        return (entry.cfg.searchFields || []).length > 0;
      })
      .map(function (entry) {
        var cfg = entry.cfg;
        var likes = cfg.searchFields.map(function (name) {
          return {
            op: "like",
            args: [
              { op: "casei", args: [{ property: name }] },
              { op: "casei", args: [pattern] },
            ],
          };
        });
        var url = new URL(cfg.items, document.baseURI);
        url.searchParams.set("limit", String(limit || 10));
        url.searchParams.set("filter-lang", "cql2-json");
        url.searchParams.set("filter", JSON.stringify(likes.length > 1 ? { op: "or", args: likes } : likes[0]));
        return fetch(url.href, { headers: { Accept: "application/geo+json" }, credentials: "same-origin" })
          .then(function (response) {
            if (!response.ok) throw new Error("HTTP " + response.status + " " + url.href);
            return response.json();
          })
          .then(function (page) {
            return (page.features || [])
              .filter(function (feature) {
                return Boolean(feature.geometry);
              })
              .map(function (feature) {
                var rank = rankOf(feature.properties || {}, q);
                return { rank: Math.min(rank, 2), entry: { feature: feature, cfg: cfg, remote: true } };
              });
          });
      });
    return Promise.all(asks).then(function (lists) {
      return [].concat.apply([], lists);
    });
  }

  /* The page's matches and the tiled layers' matches from the server, together, best first. */
  function searchAll(query, limit) {
    return remoteMatches(query, limit).then(function (remote) {
      return ordered(localMatches(query).concat(remote), limit);
    });
  }

  /* Show the feature's layer and status, zoom to the feature and open its popup. */
  function choose(entry) {
    var map = theMap;
    var holder = layers[entry.cfg.id];
    if (holder && !map.hasLayer(holder)) map.addLayer(holder);
    if (filteredOut(entry)) {
      var status = entry.feature.properties.status;
      STATUS_GROUPS.forEach(function (group) {
        if (group.statuses.indexOf(status) >= 0) setStatusGroup(group.key, true);
      });
    }
    if (entry.remote) {
      showFeature(entry.feature, entry.cfg);
      return;
    }
    var layer = entry.layer;
    if (layer.getLatLng) map.setView(layer.getLatLng(), Math.max(map.getZoom(), 14), { animate: false });
    else map.fitBounds(layer.getBounds(), { maxZoom: 14, animate: false, padding: [20, 20] });
    layer.openPopup();
  }

  var SearchControl = L.Control.extend({
    options: { position: "topright" },
    onAdd: function () {
      var box = el("div", "jx-search leaflet-bar");
      var labelNode = el("label", "jx-search-label", "搜索 ");
      labelNode.appendChild(el("span", "jx-en", "Search"));
      labelNode.htmlFor = "jx-search-input";
      var input = el("input", "jx-search-input");
      input.id = "jx-search-input";
      input.type = "search";
      input.autocomplete = "off";
      input.placeholder = "名称、编号或别名 Name, code or alias";
      var list = el("ul", "jx-search-results");
      list.setAttribute("role", "listbox");
      var current = [];
      var asked = 0;
      var timer = null;

      function pick(entry) {
        asked += 1; // an answer still on its way no longer redraws the list
        clearTimeout(timer);
        list.textContent = "";
        current = [];
        choose(entry);
      }

      /* The page's matches at once; with tiled layers on the page, the server's too after a short pause in
       * typing (an answer to an older query is dropped). */
      function show() {
        current = search(input.value, 10);
        var remote = tileLayers.length > 0 && input.value.trim() !== "";
        draw(remote);
        var mine = ++asked;
        clearTimeout(timer);
        if (!remote) return;
        var query = input.value;
        timer = setTimeout(function () {
          searchAll(query, 10).then(
            function (found) {
              if (mine !== asked) return;
              current = found;
              draw(false);
            },
            function (error) {
              if (mine !== asked) return;
              draw(false);
              if (window.console) console.error("jxplan: search failed:", error);
            }
          );
        }, 250);
      }

      function draw(pending) {
        list.textContent = "";
        if (input.value.trim() && !current.length) {
          list.appendChild(el("li", "jx-search-none", pending ? "搜索中… Searching" : "未找到 Nothing found"));
          return;
        }
        current.forEach(function (entry) {
          var props = entry.feature.properties || {};
          var item = el("li");
          var button = el("button", "jx-search-result");
          button.type = "button";
          button.appendChild(el("span", "jx-search-name", present(props.name_zh) ? props.name_zh : props.code));
          if (present(props.name_en)) button.appendChild(el("span", "jx-search-name-en jx-en", props.name_en));
          button.appendChild(el("span", "jx-search-layer", entry.cfg.title));
          button.addEventListener("click", function (event) {
            // the list is emptied before the click reaches the map, which would then take it as its own
            // and close the popup just opened
            event.stopPropagation();
            pick(entry);
          });
          item.appendChild(button);
          list.appendChild(item);
        });
      }

      input.addEventListener("input", show);
      input.addEventListener("keydown", function (event) {
        if (event.key === "Enter" && current.length) {
          event.preventDefault();
          pick(current[0]);
        } else if (event.key === "Escape") {
          input.value = "";
          show();
        }
      });
      box.appendChild(labelNode);
      box.appendChild(input);
      box.appendChild(list);
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      return box;
    },
  });

  /* ---- per-feature and per-collection pages: zoom to what the page is about once it has loaded ---- */

  function focusIfAsked(id) {
    var focus = config.focus;
    if (!focus || focus.layer !== id) return;
    if (focus.feature === undefined || focus.feature === null) {
      var group = L.featureGroup(
        entries
          .filter(function (entry) {
            return entry.cfg.id === id;
          })
          .map(function (entry) {
            return entry.layer;
          })
      );
      if (group.getLayers().length) theMap.fitBounds(group.getBounds(), { maxZoom: 14, animate: false, padding: [20, 20] });
      window.jxplanFocused = true;
      return;
    }
    var match = entries.filter(function (entry) {
      return entry.cfg.id === id && String(entry.feature.id) === String(focus.feature);
    })[0];
    if (match) {
      choose(match);
      window.jxplanFocused = true;
      return;
    }
    // not drawn as a vector (a tiled layer, or a feature without location): ask the server for it
    window.jxplanFocused = null;
    focusFromServer(id, focus.feature).then(
      function (found) {
        window.jxplanFocused = found;
      },
      function (error) {
        window.jxplanFocused = false;
        if (window.console) console.error("jxplan: feature " + focus.feature + " failed to load:", error);
      }
    );
  }

  var NoticeControl = L.Control.extend({
    options: { position: "topleft" },
    onAdd: function () {
      return el("div", "jx-notice leaflet-bar", this.options.text);
    },
  });

  async function focusFromServer(id, featureId) {
    var path = "/collections/" + encodeURIComponent(id) + "/items/" + encodeURIComponent(String(featureId));
    var url = new URL(path, document.baseURI);
    url.searchParams.set("f", "json");
    var response = await fetch(url.href, {
      headers: { Accept: "application/geo+json" },
      credentials: "same-origin",
    });
    if (!response.ok) throw new Error("HTTP " + response.status + " " + url.href);
    var feature = await response.json();
    if (!feature.geometry) {
      new NoticeControl({ text: "此要素尚无位置 This feature has no location yet" }).addTo(theMap);
      return false;
    }
    showFeature(feature, configs[id]);
    return true;
  }

  /* Zoom to a feature that is not drawn as a vector (it came from the server) and explain it in a popup. */
  function showFeature(feature, cfg) {
    var bounds = L.geoJSON(feature).getBounds();
    theMap.fitBounds(bounds, { maxZoom: 14, animate: false, padding: [20, 20] });
    popupAt(theMap, bounds.getCenter(), feature, cfg);
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
    theMap = map;
    window.jxplanMap = map;
    L.control.scale({ imperial: false, position: "bottomleft" }).addTo(map);
    if (config.finder !== false) {
      new SearchControl().addTo(map);
      new FilterControl().addTo(map);
    }
  }

  function setClickMode(mode) {
    clickMode = mode || null;
  }

  window.jxplan = Object.assign(window.jxplan || {}, {
    setup: setup,
    planLayer: planLayer,
    legend: legend,
    layers: layers,
    state: state,
    search: search,
    searchAll: searchAll,
    choose: choose,
    setStatusGroup: setStatusGroup,
    setClickMode: setClickMode,
  });
})();
