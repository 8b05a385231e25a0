/* Planning analysis in the browser: the 选址检查 Site check tool of the map pages, the report it shows
 * (used by the editor's Check button too) and the 区县汇总 County summary page.
 *
 * The server does every analysis (POST /processes/{id}/execution); the page sends a geometry or a feature's
 * href and shows the answer. Every text from the data or the server is placed with textContent, never as
 * HTML, and only this service's own paths become links. `window.jxplanSiteCheck` and
 * `window.jxplanSummary` expose the state for people debugging a page (and for the browser tests).
 */
(function () {
  "use strict";

  var ns = (window.jxplan = window.jxplan || {});
  var labels = { status: {}, accuracy: {} };

  var RELATIONS = {
    within: "场地在其范围内 site within it",
    contains: "位于场地内 inside the site",
    intersects: "相交 intersects",
  };
  var NEAREST = [
    { key: "rail_station", label: "最近车站 Nearest station" },
    { key: "hub", label: "最近枢纽 Nearest hub" },
    { key: "road_project", label: "最近道路项目 Nearest road project" },
  ];
  var STATUS_ORDER = ["planned", "under_construction", "completed", "existing"];
  var STATUS_COLORS = {
    planned: "#4e79a7",
    under_construction: "#f28e2b",
    completed: "#59a14f",
    existing: "#9c9c9c",
  };
  // built_share classes of the choropleth (upper bounds) and their fills, light to dark
  var SHARE_BREAKS = [0.2, 0.4, 0.6, 0.8, 1.0000001];
  var SHARE_COLORS = ["#edf8e9", "#bae4b3", "#74c476", "#31a354", "#006d2c"];

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function present(value) {
    return value !== undefined && value !== null && value !== "";
  }

  function button(text, className, onClick) {
    var node = el("button", "jx-sc-button " + (className || ""), text);
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }

  /* The path (and query) of an address on this service — the server's hrefs are absolute, on the origin the
   * page came from — or null for anything else: only this service's own pages become links. */
  function localPath(href) {
    var text = String(href || "");
    if (!text || text.indexOf("//") === 0 || text.charAt(1) === "\\") return null;
    try {
      var url = new URL(text, window.location.origin);
      if (url.origin !== window.location.origin || !/^https?:$/.test(url.protocol)) return null;
      return url.pathname + url.search;
    } catch (e) {
      return null;
    }
  }

  function withParam(path, name, value) {
    var url = new URL(path, window.location.origin);
    url.searchParams.set(name, value);
    return url.pathname + url.search;
  }

  function number(value, digits) {
    return Number(value).toLocaleString("zh-CN", { maximumFractionDigits: digits || 0 });
  }

  function area(m2) {
    if (!present(m2)) return null;
    if (m2 >= 1e6) return number(m2 / 1e6, 2) + " km² (" + number(m2) + " m²)";
    return number(m2) + " m²";
  }

  function length(m) {
    if (!present(m)) return null;
    return m >= 1000 ? number(m / 1000, 2) + " km" : number(m) + " m";
  }

  function percent(share) {
    return present(share) ? number(share * 100, 1) + "%" : null;
  }

  function statusText(status) {
    return labels.status[status] || status;
  }

  function accuracyText(item) {
    var text = labels.accuracy[item.accuracy] || item.accuracy;
    return present(item.accuracy_m) ? text + " ±" + number(item.accuracy_m) + " m" : text;
  }

  function names(item) {
    var box = el("span", "jx-sc-names");
    box.appendChild(el("span", "jx-sc-name-zh", present(item.name_zh) ? item.name_zh : item.code));
    if (present(item.name_en)) {
      box.appendChild(document.createTextNode(" "));
      box.appendChild(el("span", "jx-en", item.name_en));
    }
    return box;
  }

  /* The feature's names as a link to its page (the server's href with f=html). */
  function linkedNames(item) {
    var path = localPath(item.href);
    if (!path) return names(item);
    var link = el("a", "jx-sc-link");
    link.href = withParam(path, "f", "html");
    link.target = "_blank";
    link.rel = "noopener";
    link.appendChild(names(item));
    return link;
  }

  function field(dl, caption, value) {
    if (!present(value)) return;
    dl.appendChild(el("dt", null, caption));
    var dd = el("dd");
    if (value instanceof Node) dd.appendChild(value);
    else dd.textContent = String(value);
    dl.appendChild(dd);
  }

  /* ---- talking to the server ---------------------------------------------------------------------------- */

  function ProblemError(problem) {
    this.name = "ProblemError";
    this.problem = problem;
    this.message = problem.detail || problem.title;
  }
  ProblemError.prototype = Object.create(Error.prototype);

  async function problemOf(response) {
    var body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    return {
      status: response.status,
      title: (body && body.title) || "HTTP " + response.status,
      detail: (body && body.detail) || response.statusText || "HTTP " + response.status,
    };
  }

  /* POST a process's inputs; the response itself (raw), or a ProblemError with the server's problem. */
  async function execute(processId, inputs, accept) {
    var response;
    try {
      response = await fetch("/processes/" + encodeURIComponent(processId) + "/execution", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: accept || "application/json" },
        credentials: "same-origin",
        body: JSON.stringify({ inputs: inputs }),
      });
    } catch (error) {
      throw new ProblemError({ status: 0, title: "无法连接服务器 Cannot reach the server", detail: String(error.message) });
    }
    if (!response.ok) throw new ProblemError(await problemOf(response));
    return response;
  }

  /* The site-check report of a GeoJSON geometry (CRS84) or a feature's href ("/collections/…/items/…"). */
  async function siteCheck(site, layers) {
    var inputs = { site: typeof site === "string" ? { href: site } : site };
    if (layers && layers.length) inputs.layers = layers;
    var response = await execute("site-check", inputs);
    return response.json();
  }

  async function featureGeoJSON(href) {
    var path = localPath(href);
    if (!path) return null;
    var response = await fetch(withParam(path, "f", "json"), {
      headers: { Accept: "application/geo+json" },
      credentials: "same-origin",
    });
    if (!response.ok) return null;
    return response.json();
  }

  /* ---- the report ----------------------------------------------------------------------------------------- */

  function sortedItems(report) {
    // the server sends conflicts first, then by overlap; kept so whatever order it sends
    return (report.items || []).slice().sort(function (a, b) {
      return (b.conflict ? 1 : 0) - (a.conflict ? 1 : 0) || (b.overlap_m2 || 0) - (a.overlap_m2 || 0);
    });
  }

  function itemNode(item, compact) {
    var li = el("li", "jx-sc-item" + (item.conflict ? " jx-sc-conflict" : ""));
    li.dataset.layer = String(item.layer);
    li.dataset.id = String(item.id);
    var head = el("div", "jx-sc-item-head");
    if (item.conflict) head.appendChild(el("span", "jx-sc-badge", "冲突 conflict"));
    head.appendChild(el("span", "jx-sc-layer", item.layer_title || item.layer));
    li.appendChild(head);
    li.appendChild(el("div", "jx-sc-item-name")).appendChild(linkedNames(item));
    if (item.conflict && present(item.conflict_reason)) li.appendChild(el("div", "jx-sc-reason", item.conflict_reason));
    var dl = el("dl", "jx-sc-fields");
    field(dl, "状态 Status", statusText(item.status));
    field(dl, "关系 Relation", RELATIONS[item.relation] || item.relation);
    var overlap = [area(item.overlap_m2), present(item.share) ? "占场地 of the site " + percent(item.share) : null]
      .filter(present)
      .join(" · ");
    field(dl, "重叠 Overlap", overlap);
    field(dl, "长度 Length", length(item.length_m));
    var accuracy = el("span", item.accuracy === "schematic" ? "jx-sc-schematic" : null, accuracyText(item));
    field(dl, "精度 Accuracy", present(item.accuracy) ? accuracy : null);
    if (!compact) field(dl, "类别 Category", item.category);
    li.appendChild(dl);
    if (!compact && present(item.plan_text)) li.appendChild(el("blockquote", "jx-sc-plan", item.plan_text));
    var path = localPath(item.href);
    if (path) {
      var links = el("div", "jx-sc-links");
      var details = el("a", "jx-sc-details", "详情 Details");
      details.href = withParam(path, "f", "html");
      details.target = "_blank";
      details.rel = "noopener";
      var onMap = el("a", "jx-sc-map", "地图 Map");
      onMap.href = path.split("?")[0] + "/map";
      onMap.target = "_blank";
      onMap.rel = "noopener";
      links.appendChild(details);
      links.appendChild(document.createTextNode(" "));
      links.appendChild(onMap);
      li.appendChild(links);
    }
    return li;
  }

  function countyText(county) {
    var text = county.name_zh + (present(county.name_en) ? " " + county.name_en : "");
    return present(county.share) && county.share < 0.9995 ? text + "(" + percent(county.share) + ")" : text;
  }

  /* The report as DOM nodes in `container` (emptied first); `options.compact` leaves out plan texts. */
  function renderReport(container, report, options) {
    var compact = Boolean(options && options.compact);
    container.textContent = "";
    var items = sortedItems(report);
    var conflicts = typeof report.conflicts === "number" ? report.conflicts : items.filter(function (i) {
      return i.conflict;
    }).length;
    var summary = el(
      "p",
      "jx-sc-summary " + (conflicts ? "jx-sc-has-conflicts" : "jx-sc-no-conflicts"),
      conflicts
        ? conflicts + " 处冲突 conflict" + (conflicts > 1 ? "s" : "") + " · " + items.length + " 个相关要素 items"
        : "无冲突 No conflicts · " + items.length + " 个相关要素 items"
    );
    container.appendChild(summary);

    var where = el("dl", "jx-sc-fields jx-sc-where");
    var site = report.site || {};
    var siteText = [site.type, area(site.area_m2), length(site.length_m)].filter(present).join(" · ");
    field(where, "场地 Site", siteText);
    if (report.county) {
      field(where, "区县 County", countyText(report.county));
    } else {
      field(where, "区县 County", "—");
    }
    if ((report.counties || []).length > 1) {
      var list = el("ul", "jx-sc-counties");
      report.counties.forEach(function (c) {
        list.appendChild(el("li", null, countyText(c) + (present(c.overlap_m2) ? " · " + area(c.overlap_m2) : "")));
      });
      field(where, "跨区县 Counties", list);
    }
    if (report.town) {
      var town = linkedNames(report.town);
      field(where, "镇街 Town", town);
    }
    if (present(report.town_note)) field(where, report.town ? "镇街说明 Town note" : "镇街 Town", report.town_note);
    container.appendChild(where);

    if (items.length) {
      container.appendChild(el("h4", "jx-sc-subtitle", "相关规划要素 Plan items at the site"));
      var ul = el("ul", "jx-sc-items");
      items.forEach(function (item) {
        ul.appendChild(itemNode(item, compact));
      });
      container.appendChild(ul);
    }

    var nearest = report.nearest || {};
    var near = el("dl", "jx-sc-fields jx-sc-nearest");
    NEAREST.forEach(function (kind) {
      var found = nearest[kind.key];
      if (!found) return;
      var box = el("span", "jx-sc-near-" + kind.key);
      box.appendChild(linkedNames(found));
      var bits = [length(found.distance_m)];
      if (present(found.status)) bits.push(statusText(found.status));
      if (found.accuracy === "schematic") bits.push(accuracyText(found));
      box.appendChild(el("span", "jx-sc-distance", " · " + bits.filter(present).join(" · ")));
      field(near, kind.label, box);
    });
    if (near.childNodes.length) {
      container.appendChild(el("h4", "jx-sc-subtitle", "周边 Nearby"));
      container.appendChild(near);
    }
    if ((report.notes || []).length) {
      var notes = el("ul", "jx-sc-notes");
      report.notes.forEach(function (note) {
        notes.appendChild(el("li", null, note));
      });
      container.appendChild(notes);
    }
    return container;
  }

  function renderProblem(container, problem) {
    container.textContent = "";
    var box = el("div", "jx-sc-error");
    box.setAttribute("role", "alert");
    box.appendChild(el("strong", null, problem.title + (problem.status ? " (" + problem.status + ")" : "")));
    box.appendChild(el("p", "jx-sc-error-detail", problem.detail));
    container.appendChild(box);
  }

  /* The site and the report's items drawn over the map: the site dashed blue, conflicts red, others amber. */
  function highlighter(map) {
    if (!map.getPane("jxplanSiteCheck")) map.createPane("jxplanSiteCheck").style.zIndex = "620";
    var group = L.featureGroup().addTo(map);
    var asked = 0;

    function style(kind) {
      var colors = { site: "#1f5fd6", conflict: "#d7191c", item: "#f0a020" };
      return {
        pane: "jxplanSiteCheck",
        interactive: false,
        color: colors[kind],
        weight: kind === "site" ? 3 : 4,
        dashArray: kind === "site" ? "6 4" : null,
        fillColor: colors[kind],
        fillOpacity: kind === "site" ? 0.08 : 0.25,
        className: "jx-sc-highlight jx-sc-highlight-" + kind,
      };
    }

    function draw(geojson, kind) {
      if (!geojson || (geojson.type === "Feature" && !geojson.geometry)) return null;
      var drawn = L.geoJSON(geojson, {
        style: function () {
          return style(kind);
        },
        pointToLayer: function (feature, latlng) {
          var options = style(kind);
          options.radius = 9;
          return L.circleMarker(latlng, options);
        },
      });
      group.addLayer(drawn);
      return drawn;
    }

    return {
      group: group,
      clear: function () {
        asked += 1;
        group.clearLayers();
      },
      site: function (geojson) {
        return draw(geojson, "site");
      },
      /* Fetch each item's GeoJSON and draw it; resolves with how many were drawn. */
      items: async function (report) {
        var mine = asked;
        var items = sortedItems(report);
        var features = await Promise.all(
          items.map(function (item) {
            return featureGeoJSON(item.href).catch(function () {
              return null;
            });
          })
        );
        if (mine !== asked) return 0;
        var count = 0;
        // others first, so that conflicts are drawn on top
        for (var i = items.length - 1; i >= 0; i--) {
          if (draw(features[i], items[i].conflict ? "conflict" : "item")) count += 1;
        }
        return count;
      },
    };
  }

  /* ---- the Site check tool of the map pages --------------------------------------------------------------- */

  function siteCheckTool(map, cfg) {
    labels = cfg.labels || labels;
    var state = { mode: null, report: null, problem: null, running: false, site: null, highlighted: 0, runs: 0 };
    window.jxplanSiteCheck = state;
    var marks = highlighter(map);
    if (map.pm && map.pm.setLang) map.pm.setLang("zh");

    var panel = el("section", "jx-sc-panel");
    panel.hidden = true;
    panel.setAttribute("aria-label", "选址检查 Site check");
    L.DomEvent.disableClickPropagation(panel);
    L.DomEvent.disableScrollPropagation(panel);
    var head = el("div", "jx-sc-head");
    var title = el("h3", "jx-sc-title", "选址检查 ");
    title.appendChild(el("span", "jx-en", "Site check"));
    head.appendChild(title);
    head.appendChild(button("×", "jx-sc-close", function () {
      setOpen(false);
    }));
    panel.appendChild(head);
    var tools = el("div", "jx-sc-tools");
    var drawButton = button("绘制范围 Draw an area", "jx-sc-draw", startDrawing);
    var pickButton = button("选择要素 Pick a feature", "jx-sc-pick", startPicking);
    var clearButton = button("清除 Clear", "jx-sc-clear", clear);
    tools.appendChild(drawButton);
    tools.appendChild(pickButton);
    tools.appendChild(clearButton);
    panel.appendChild(tools);
    var hint = el("p", "jx-sc-hint", "在地图上绘制一个范围,或选择一个规划要素。Draw an area on the map, or pick a plan feature.");
    panel.appendChild(hint);
    var result = el("div", "jx-sc-result");
    result.setAttribute("role", "status");
    result.setAttribute("aria-live", "polite");
    panel.appendChild(result);
    map.getContainer().appendChild(panel);

    var Toggle = L.Control.extend({
      options: { position: "topleft" },
      onAdd: function () {
        var bar = el("div", "leaflet-bar jx-sc-control");
        var open = el("a", "jx-sc-toggle", "选址检查 Site check");
        open.href = "#";
        open.setAttribute("role", "button");
        open.title = "选址检查:绘制范围或选择要素,查看冲突与周边 Site check: draw an area or pick a feature";
        L.DomEvent.on(open, "click", function (event) {
          L.DomEvent.preventDefault(event);
          setOpen(panel.hidden);
        });
        bar.appendChild(open);
        L.DomEvent.disableClickPropagation(bar);
        return bar;
      },
    });
    new Toggle().addTo(map);

    function setOpen(open) {
      panel.hidden = !open;
      map.getContainer().classList.toggle("jx-sc-open", open);
      if (!open) stopModes();
    }

    function setHint(text) {
      hint.textContent = text;
    }

    function stopModes() {
      if (map.pm && map.pm.globalDrawModeEnabled && map.pm.globalDrawModeEnabled()) map.pm.disableDraw();
      state.mode = null;
      if (ns.setClickMode) ns.setClickMode(null);
      map.getContainer().classList.remove("jx-sc-drawing", "jx-sc-picking");
      drawButton.classList.remove("jx-sc-active");
      pickButton.classList.remove("jx-sc-active");
    }

    function startDrawing() {
      stopModes();
      if (!map.pm) {
        renderProblem(result, { title: "无法绘制 Cannot draw", detail: "绘图工具未加载 The drawing tool did not load." });
        return;
      }
      state.mode = "draw";
      if (ns.setClickMode) ns.setClickMode({ draw: true });
      map.getContainer().classList.add("jx-sc-drawing");
      drawButton.classList.add("jx-sc-active");
      map.pm.enableDraw("Polygon", {
        snappable: false,
        allowSelfIntersection: true, // the server says what is wrong with a shape
        continueDrawing: false,
        pathOptions: { color: "#1f5fd6", dashArray: "6 4", fillOpacity: 0.08 },
      });
      setHint("依次点击各角点,点击第一个角点结束。Click each corner; click the first one again to finish.");
    }

    function startPicking() {
      stopModes();
      state.mode = "pick";
      map.getContainer().classList.add("jx-sc-picking");
      pickButton.classList.add("jx-sc-active");
      if (ns.setClickMode) {
        ns.setClickMode({
          pick: function (feature, layerCfg) {
            var href = "/collections/" + encodeURIComponent(layerCfg.id) + "/items/" + encodeURIComponent(String(feature.id));
            stopModes();
            run(href, feature);
          },
        });
      }
      setHint("点击地图上的一个规划要素。Click a plan feature on the map.");
    }

    map.on("pm:create", function (event) {
      if (state.mode !== "draw") return;
      var geometry = event.layer.toGeoJSON().geometry;
      map.removeLayer(event.layer);
      stopModes();
      run(geometry, null);
    });

    function clear() {
      stopModes();
      marks.clear();
      state.report = null;
      state.problem = null;
      state.site = null;
      state.highlighted = 0;
      result.textContent = "";
      setHint("在地图上绘制一个范围,或选择一个规划要素。Draw an area on the map, or pick a plan feature.");
    }

    /* Check a site (geometry or href); `feature` is the picked feature, drawn as the site. */
    async function run(site, feature) {
      var mine = ++state.runs;
      marks.clear();
      state.report = null;
      state.problem = null;
      state.site = site;
      state.highlighted = 0;
      state.running = true;
      if (typeof site === "string") {
        if (feature && feature.geometry) marks.site(feature);
        setHint("所选要素 Picked: " + [feature && feature.properties && feature.properties.name_zh, site].filter(present).join(" · "));
      } else {
        marks.site({ type: "Feature", geometry: site, properties: {} });
        setHint("所绘范围 Drawn area");
      }
      result.textContent = "";
      result.appendChild(el("p", "jx-sc-busy", "检查中… Checking…"));
      try {
        var report = await siteCheck(site);
        if (mine !== state.runs) return;
        state.report = report;
        renderReport(result, report);
        state.highlighted = await marks.items(report);
      } catch (error) {
        if (mine !== state.runs) return;
        var problem = error.problem || { title: "检查失败 Check failed", detail: String(error.message || error) };
        state.problem = problem;
        renderProblem(result, problem);
      } finally {
        if (mine === state.runs) {
          state.running = false;
          document.dispatchEvent(new CustomEvent("jxplan:sitecheck", { detail: { state: state } }));
        }
      }
    }

    return { run: run, clear: clear, open: setOpen, draw: startDrawing, pick: startPicking, state: state };
  }

  /* ---- the County summary page ---------------------------------------------------------------------------- */

  function shareColor(share) {
    if (!present(share)) return "#dddddd";
    for (var i = 0; i < SHARE_BREAKS.length; i++) if (share < SHARE_BREAKS[i]) return SHARE_COLORS[i];
    return SHARE_COLORS[SHARE_COLORS.length - 1];
  }

  function cell(tr, text, className) {
    var td = el("td", className, text);
    tr.appendChild(td);
    return td;
  }

  function fillTable(table, areas) {
    var tbody = table.querySelector("tbody");
    tbody.textContent = "";
    areas.forEach(function (a) {
      var tr = el("tr", "jx-cs-row jx-cs-" + (a.level === "city" ? "city" : "county"));
      tr.dataset.adcode = String(a.adcode);
      var name = cell(tr, null, "jx-cs-name");
      name.appendChild(el("span", null, a.name_zh));
      if (present(a.name_en)) {
        name.appendChild(document.createTextNode(" "));
        name.appendChild(el("span", "jx-en", a.name_en));
      }
      cell(tr, present(a.area_km2) ? number(a.area_km2, 1) : "—", "jx-num");
      cell(tr, present(a.items) ? number(a.items) : "—", "jx-num");
      STATUS_ORDER.forEach(function (status) {
        cell(tr, number((a.by_status || {})[status] || 0), "jx-num");
      });
      cell(tr, present(a.zone_area_km2) ? number(a.zone_area_km2, 1) : "—", "jx-num");
      cell(tr, present(a.rail_km) ? number(a.rail_km, 1) : "—", "jx-num");
      cell(tr, present(a.road_km) ? number(a.road_km, 1) : "—", "jx-num");
      cell(tr, percent(a.built_share) || "—", "jx-num");
      tbody.appendChild(tr);
    });
  }

  function drawChart(canvas, counties) {
    if (typeof window.Chart !== "function") throw new Error("Chart.js did not load");
    var existing = window.Chart.getChart && window.Chart.getChart(canvas);
    if (existing) existing.destroy();
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: counties.map(function (a) {
          return a.name_zh;
        }),
        datasets: STATUS_ORDER.map(function (status) {
          return {
            label: statusText(status),
            data: counties.map(function (a) {
              return (a.by_status || {})[status] || 0;
            }),
            backgroundColor: STATUS_COLORS[status],
          };
        }),
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        scales: {
          x: { stacked: true },
          y: { stacked: true, beginAtZero: true, title: { display: true, text: "规划项目数 Plan items" } },
        },
        plugins: {
          title: { display: true, text: "各区县规划项目(按状态)Plan items by status per county" },
          legend: { position: "bottom" },
        },
      },
    });
  }

  var ShareLegend = L.Control.extend({
    options: { position: "bottomright" },
    onAdd: function () {
      var box = el("div", "jx-cs-legend");
      box.appendChild(el("div", "jx-cs-legend-title", "已建成比例 Built share"));
      var lower = 0;
      SHARE_COLORS.forEach(function (color, i) {
        var row = el("div", "jx-cs-legend-row");
        var swatch = el("span", "jx-cs-swatch");
        swatch.style.background = color; // CSSOM, which the page's policy allows (no style attribute)
        row.appendChild(swatch);
        var upper = Math.min(1, SHARE_BREAKS[i]);
        row.appendChild(el("span", null, Math.round(lower * 100) + "–" + Math.round(upper * 100) + "%"));
        lower = upper;
        box.appendChild(row);
      });
      return box;
    },
  });

  async function saveCsv(status) {
    status.textContent = "下载中… Downloading…";
    try {
      var response = await execute("county-summary", { format: "csv" }, "text/csv");
      var blob = await response.blob();
      var name = "jiaxing-county-summary.csv";
      var disposition = response.headers.get("Content-Disposition") || "";
      var match = /filename="?([A-Za-z0-9._-]+)"?/.exec(disposition);
      if (match) name = match[1];
      var link = el("a");
      link.href = URL.createObjectURL(blob);
      link.download = name;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(function () {
        URL.revokeObjectURL(link.href);
      }, 10000);
      status.textContent = "已下载 Downloaded: " + name;
    } catch (error) {
      status.textContent = (error.problem ? error.problem.detail : String(error.message || error));
      status.classList.add("jx-error");
    }
  }

  async function countySummary(map, cfg) {
    labels = cfg.labels || labels;
    var state = { state: "loading", areas: [], counties: 0, error: null };
    window.jxplanSummary = state;
    var table = document.getElementById(cfg.tableId);
    var canvas = document.getElementById(cfg.chartId);
    var notes = document.getElementById(cfg.notesId);
    var csvButton = document.getElementById(cfg.csvId);
    var csvStatus = document.getElementById(cfg.csvStatusId);
    csvButton.addEventListener("click", function () {
      saveCsv(csvStatus);
    });
    new ShareLegend().addTo(map);
    try {
      var summaryAnswer = execute("county-summary", { format: "json" }).then(function (r) {
        return r.json();
      });
      var boundaryAnswer = fetch(cfg.boundaries, { headers: { Accept: "application/geo+json" }, credentials: "same-origin" }).then(
        function (r) {
          if (!r.ok) throw new Error("HTTP " + r.status + " " + cfg.boundaries);
          return r.json();
        }
      );
      var summary = await summaryAnswer;
      var boundaries = await boundaryAnswer;
      state.areas = summary.areas || [];
      fillTable(table, state.areas);
      var byCode = {};
      state.areas.forEach(function (a) {
        byCode[String(a.adcode)] = a;
      });
      var counties = state.areas.filter(function (a) {
        return a.level !== "city";
      });
      state.chart = drawChart(canvas, counties);
      var drawn = L.geoJSON(
        {
          type: "FeatureCollection",
          features: (boundaries.features || []).filter(function (f) {
            return f.geometry && f.properties && f.properties.level !== "city" && byCode[String(f.properties.adcode)];
          }),
        },
        {
          style: function (feature) {
            var a = byCode[String(feature.properties.adcode)];
            return {
              color: "#335",
              weight: 1.5,
              fillColor: shareColor(a.built_share),
              fillOpacity: 0.75,
              className: "jx-cs-county",
            };
          },
          onEachFeature: function (feature, layer) {
            var a = byCode[String(feature.properties.adcode)];
            var tip = el("span", null, a.name_zh + " " + (a.name_en || "") + " · 已建成 built " + (percent(a.built_share) || "—"));
            layer.bindTooltip(tip, { sticky: true, className: "jx-tooltip" });
            layer.on("click", function () {
              table.querySelectorAll("tr.jx-cs-selected").forEach(function (row) {
                row.classList.remove("jx-cs-selected");
              });
              var row = table.querySelector('tr[data-adcode="' + String(a.adcode).replace(/[^0-9A-Za-z_-]/g, "") + '"]');
              if (row) {
                row.classList.add("jx-cs-selected");
                row.scrollIntoView({ block: "nearest" });
              }
            });
            state.counties += 1;
          },
        }
      ).addTo(map);
      if (drawn.getLayers().length) map.fitBounds(drawn.getBounds(), { padding: [10, 10], animate: false });
      notes.textContent = "";
      (summary.notes || []).forEach(function (note) {
        notes.appendChild(el("li", null, note));
      });
      state.state = "done";
    } catch (error) {
      state.state = "error";
      state.error = error.problem ? error.problem.detail : String(error.message || error);
      var caption = table.querySelector("caption") || table.appendChild(el("caption"));
      caption.textContent = "加载失败 Failed to load: " + state.error;
      caption.classList.add("jx-error");
    }
    document.dispatchEvent(new CustomEvent("jxplan:summary", { detail: { state: state } }));
    return state;
  }

  ns.analysis = {
    siteCheck: siteCheck,
    execute: execute,
    renderReport: renderReport,
    renderProblem: renderProblem,
    highlighter: highlighter,
    setLabels: function (given) {
      labels = given || labels;
    },
  };
  ns.siteCheckTool = siteCheckTool;
  ns.countySummary = countySummary;
})();
