/* The browser editor of plan features: a panel beside the map to enter an editor key, pick a layer, draw,
 * reshape, delete and describe features, saving each change through OGC API – Features Part 4.
 *
 * The server holds every rule. The page sends what the planner made and shows the server's answer: problem
 * details next to the feature (geometry) and next to the fields they name (properties). Saves carry
 * If-Match with the version the planner started from; a 412 shows the version someone else saved and offers
 * to load it or to save over it. Text from the data or the server is placed with textContent, never as HTML.
 * Check (and every save) runs the server's site check on the shape and lists its conflicts with other plan
 * items in the panel: a warning, never a block (jxplan-analysis.js draws the report).
 * `window.jxplanEditor` exposes the state for people debugging a page (and for the browser tests).
 */
(function () {
  "use strict";

  var KEY_STORE = "jxplan-editor-key";
  // Shown at the top of the form; the layer's other fields are folded under "More fields".
  var MAIN_FIELDS = ["status_date", "county", "accuracy_m", "plan_text", "note"];
  var PAGE_LIMIT = 1000;
  var MAX_PAGES = 1000;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function button(text, className, onClick) {
    var node = el("button", "jx-ed-button " + (className || ""), text);
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }

  function present(value) {
    return value !== undefined && value !== null && value !== "";
  }

  function types(schema) {
    return Array.isArray(schema.type) ? schema.type : [schema.type];
  }

  /* The feature id in a Location header or URL: the last path segment. */
  function idOf(location) {
    var path = new URL(location, window.location.href).pathname.split("/");
    return decodeURIComponent(path[path.length - 1]);
  }

  function versionOf(etag) {
    var match = /"f\d+v(\d+)/.exec(etag || "");
    return match ? Number(match[1]) : null;
  }

  function editor(map, cfg) {
    var layersById = {};
    cfg.layers.forEach(function (layer) {
      layersById[layer.id] = layer;
    });

    var state = {
      key: sessionStorage.getItem(KEY_STORE) || "",
      caller: null,
      layer: null,
      loaded: 0,
      selected: null, // {id, etag, feature, layer (Leaflet), isNew}
      lastProblem: null,
      busy: false,
      conflict: null,
      formError: null,
      check: null, // {geometry (JSON text), featureId, running, report, problem}
    };
    window.jxplanEditor = {
      state: state,
      featureLayers: function () {
        return group.getLayers();
      },
      codes: function () {
        return group.getLayers().map(function (l) {
          return l.feature && l.feature.properties ? l.feature.properties.code : null;
        });
      },
      layerOf: function (code) {
        return group.getLayers().filter(function (l) {
          return l.feature && l.feature.properties && l.feature.properties.code === code;
        })[0];
      },
    };

    if (map.pm && map.pm.setLang) map.pm.setLang("zh");
    if (map.pm && map.pm.setGlobalOptions) {
      map.pm.setGlobalOptions({ allowSelfIntersection: true, snappable: false, continueDrawing: false });
    }

    var pane = map.createPane("jxplanEditing");
    pane.style.zIndex = 450; // above the plan layers, below the vertex markers Geoman puts in markerPane
    var group = L.featureGroup([], { pane: "jxplanEditing" }).addTo(map);

    /* ---- the panel ---------------------------------------------------------------------------------- */

    var panel = el("div", "jx-ed-panel");
    panel.setAttribute("role", "region");
    panel.setAttribute("aria-label", "编辑 Editor");
    L.DomEvent.disableClickPropagation(panel);
    L.DomEvent.disableScrollPropagation(panel);

    panel.appendChild(el("h2", "jx-ed-heading", "编辑 Editor"));

    // key
    var keyBox = el("div", "jx-ed-section jx-ed-key");
    var keyLabel = el("label", null, "编辑密钥 Editor key");
    var keyInput = el("input");
    keyInput.type = "password";
    keyInput.name = "key";
    keyInput.autocomplete = "off";
    keyInput.placeholder = "jxp_…";
    keyInput.value = state.key;
    keyLabel.appendChild(keyInput);
    keyBox.appendChild(keyLabel);
    var keyStatus = el("div", "jx-ed-keystatus");
    keyBox.appendChild(button("使用 Use key", "jx-ed-usekey", function () {
      useKey(keyInput.value.trim());
    }));
    keyBox.appendChild(button("退出 Forget", "jx-ed-forget", function () {
      sessionStorage.removeItem(KEY_STORE);
      keyInput.value = "";
      state.key = "";
      state.caller = null;
      showKey();
    }));
    keyBox.appendChild(keyStatus);
    panel.appendChild(keyBox);

    // layer
    var layerBox = el("div", "jx-ed-section");
    var layerLabel = el("label", null, "图层 Layer");
    var layerSelect = el("select");
    layerSelect.name = "layer";
    layerSelect.appendChild(new Option("— 选择图层 choose a layer —", ""));
    cfg.layers.forEach(function (layer) {
      layerSelect.appendChild(new Option(layer.title, layer.id));
    });
    layerSelect.addEventListener("change", function () {
      chooseLayer(layerSelect.value);
    });
    layerLabel.appendChild(layerSelect);
    layerBox.appendChild(layerLabel);
    var layerInfo = el("div", "jx-ed-layerinfo");
    layerBox.appendChild(layerInfo);
    var unlocatedBox = el("details", "jx-ed-unlocated");
    unlocatedBox.hidden = true;
    layerBox.appendChild(unlocatedBox);
    panel.appendChild(layerBox);

    // tools
    var tools = el("div", "jx-ed-section jx-ed-tools");
    var drawButton = button("绘制新要素 Draw new", "jx-ed-draw", startDrawing);
    var reshapeButton = button("编辑形状 Reshape", "jx-ed-reshape", toggleReshape);
    tools.appendChild(drawButton);
    tools.appendChild(reshapeButton);
    panel.appendChild(tools);

    // messages
    var messages = el("div", "jx-ed-messages");
    messages.setAttribute("role", "status");
    messages.setAttribute("aria-live", "polite");
    panel.appendChild(messages);

    // site check of the shape: conflicts with other plan items
    var checkBox = el("div", "jx-ed-check");
    checkBox.hidden = true;
    checkBox.setAttribute("aria-live", "polite");
    panel.appendChild(checkBox);

    // conflict
    var conflictBox = el("div", "jx-ed-conflict");
    conflictBox.hidden = true;
    panel.appendChild(conflictBox);

    // form
    var form = el("form", "jx-ed-form");
    form.noValidate = true;
    form.hidden = true;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      save(false);
    });
    panel.appendChild(form);

    var Panel = L.Control.extend({
      options: { position: "topright" },
      onAdd: function () {
        return panel;
      },
    });
    new Panel().addTo(map);

    /* ---- helpers ------------------------------------------------------------------------------------ */

    function say(text, kind) {
      messages.textContent = "";
      if (!text) return;
      var line = el("p", "jx-ed-msg jx-ed-" + (kind || "info"), text);
      messages.appendChild(line);
    }

    function headers(extra) {
      var out = { Accept: "application/geo+json, application/json" };
      if (state.key) out.Authorization = "Bearer " + state.key;
      Object.keys(extra || {}).forEach(function (name) {
        out[name] = extra[name];
      });
      return out;
    }

    async function readProblem(response) {
      var body = null;
      try {
        body = await response.json();
      } catch (e) {
        body = null;
      }
      return {
        status: response.status,
        title: (body && body.title) || "HTTP " + response.status,
        detail: (body && body.detail) || response.statusText,
        violations: (body && body.violations) || [],
        body: body,
      };
    }

    function showKey() {
      keyStatus.textContent = "";
      keyStatus.className = "jx-ed-keystatus";
      if (state.caller) {
        keyStatus.textContent = "已登录 Signed in: " + state.caller.name + " (" + state.caller.role + ")";
        keyStatus.classList.add("jx-ed-ok");
      } else if (state.key) {
        keyStatus.textContent = "密钥未确认 Key not checked";
      } else {
        keyStatus.textContent = "查看无需密钥;保存需要编辑密钥。Viewing needs no key; saving needs an editor key.";
      }
      var canEdit = Boolean(state.caller && (state.caller.role === "editor" || state.caller.role === "admin"));
      drawButton.disabled = !canEdit || !state.layer;
      reshapeButton.disabled = !canEdit || !state.selected || state.selected.isNew || !state.selected.layer;
      panel.classList.toggle("jx-ed-can-edit", canEdit);
    }

    async function useKey(token) {
      state.key = token;
      state.caller = null;
      if (!token) {
        showKey();
        return;
      }
      var response = await fetch("/auth/key", { headers: headers() });
      if (response.ok) {
        state.caller = await response.json();
        sessionStorage.setItem(KEY_STORE, token);
        say("");
      } else {
        var problem = await readProblem(response);
        sessionStorage.removeItem(KEY_STORE);
        say(problem.detail, "error");
      }
      showKey();
      if (state.selected) fillForm(state.selected.feature, {});
    }

    /* ---- checking a shape (site check) ---------------------------------------------------------------- */

    var analysis = window.jxplan && window.jxplan.analysis;
    if (analysis) analysis.setLabels(cfg.labels);
    var checkMarks = analysis ? analysis.highlighter(map) : null;

    function clearCheck() {
      state.check = null;
      checkBox.textContent = "";
      checkBox.hidden = true;
      if (checkMarks) checkMarks.clear();
    }

    /* The report without the feature being edited itself (its stored shape is no conflict of its new one). */
    function withoutSelf(report, featureId) {
      if (featureId === null || featureId === undefined || !state.layer) return report;
      var items = (report.items || []).filter(function (item) {
        return !(item.layer === state.layer.id && String(item.id) === String(featureId));
      });
      var copy = Object.assign({}, report, { items: items });
      copy.conflicts = items.filter(function (item) {
        return item.conflict;
      }).length;
      return copy;
    }

    /* Run the site check on the selected feature's current shape and show it; `auto` when Save started it. */
    async function runCheck(auto) {
      var selected = state.selected;
      if (!analysis || !selected) return null;
      var geometry = currentGeometry(selected);
      checkBox.hidden = false;
      checkBox.textContent = "";
      if (!geometry) {
        checkBox.appendChild(el("p", "jx-ed-msg jx-ed-info", "先绘制位置再检查。Draw a location first, then check."));
        return null;
      }
      var check = { geometry: JSON.stringify(geometry), featureId: selected.id, running: true, report: null, problem: null };
      state.check = check;
      if (checkMarks) checkMarks.clear();
      checkBox.appendChild(el("p", "jx-ed-msg jx-ed-info", (auto ? "保存前检查 Checking before saving" : "检查中 Checking") + "…"));
      try {
        var report = withoutSelf(await analysis.siteCheck(geometry), selected.id);
        if (state.check !== check) return null;
        check.report = report;
        var body = el("div", "jx-ed-checkreport");
        analysis.renderReport(body, report, { compact: true });
        checkBox.textContent = "";
        checkBox.appendChild(el("h3", "jx-ed-checktitle", "选址检查 Site check" + (auto ? "(保存时 at save)" : "")));
        if (report.conflicts) {
          checkBox.appendChild(el("p", "jx-ed-msg jx-ed-warning",
            "注意:与 " + report.conflicts + " 个规划要素冲突,仍可保存。Warning: conflicts with " +
            report.conflicts + " plan item" + (report.conflicts > 1 ? "s" : "") + "; saving is still possible."));
        }
        checkBox.appendChild(body);
        if (checkMarks) await checkMarks.items(report);
      } catch (error) {
        if (state.check !== check) return null;
        check.problem = error.problem || { title: "检查失败 Check failed", detail: String(error.message || error) };
        checkBox.textContent = "";
        analysis.renderProblem(checkBox, check.problem);
      } finally {
        check.running = false;
        document.dispatchEvent(new CustomEvent("jxplan:editorcheck", { detail: { check: check } }));
      }
      return check;
    }

    /* ---- loading a layer ---------------------------------------------------------------------------- */

    function styleFor(feature) {
      var style = state.layer.style;
      var props = (feature && feature.properties) || {};
      var color = (style.by && style.colors[props[style.by]]) || style.color;
      return {
        pane: "jxplanEditing",
        color: color,
        fillColor: style.fillColor || color,
        weight: Math.max(2, style.weight || 2),
        fillOpacity: Math.max(0.15, style.fillOpacity || 0),
        className: "jx-ed-feature",
      };
    }

    function addFeature(feature) {
      if (!feature.geometry) return null;
      var added = null;
      L.geoJSON(feature, {
        pane: "jxplanEditing",
        style: styleFor,
        pointToLayer: function (f, latlng) {
          return L.marker(latlng, { pane: "jxplanEditing", draggable: false });
        },
        onEachFeature: function (f, layer) {
          added = layer;
        },
      });
      if (!added) return null;
      added.feature = feature;
      added.on("click", function () {
        select(added);
      });
      var props = feature.properties || {};
      // a node, not a string: Leaflet inserts string tooltips as HTML
      added.bindTooltip(el("span", null, [props.name_zh, props.code].filter(present).join(" · ")), { sticky: true });
      group.addLayer(added);
      return added;
    }

    async function chooseLayer(id) {
      clearSelection();
      clearCheck();
      group.clearLayers();
      state.layer = layersById[id] || null;
      state.loaded = 0;
      layerInfo.textContent = "";
      delete layerInfo.dataset.loaded;
      showKey();
      if (!state.layer) return;
      layerInfo.textContent = "加载中… loading…";
      var url = "/collections/" + encodeURIComponent(id) + "/items?f=json&limit=" + PAGE_LIMIT;
      var unlocated = [];
      unlocatedBox.textContent = "";
      unlocatedBox.hidden = true;
      try {
        for (var page = 0; url && page < MAX_PAGES; page++) {
          var response = await fetch(url, { headers: headers() });
          if (!response.ok) throw new Error((await readProblem(response)).detail);
          var body = await response.json();
          if (!state.layer || state.layer.id !== id) return; // another layer was chosen meanwhile
          (body.features || []).forEach(function (feature) {
            if (feature.geometry) {
              addFeature(feature);
              state.loaded += 1;
            } else {
              unlocated.push(feature);
            }
          });
          var next = (body.links || []).filter(function (l) {
            return l.rel === "next";
          })[0];
          url = next ? next.href : null;
        }
      } catch (error) {
        layerInfo.textContent = "加载失败 failed: " + error.message;
        return;
      }
      layerInfo.textContent =
        state.loaded + " 个要素 features" +
        (unlocated.length ? "(另有 " + unlocated.length + " 个无位置 without location)" : "");
      if (unlocated.length) {
        unlocatedBox.appendChild(el("summary", null, "无位置要素 Features without location (" + unlocated.length + ")"));
        unlocated.forEach(function (feature) {
          var props = feature.properties || {};
          unlocatedBox.appendChild(button(props.name_zh || props.code, "jx-ed-unlocated-item", function () {
            selectById(feature.id);
          }));
        });
        unlocatedBox.hidden = false;
      }
      layerInfo.dataset.loaded = String(state.loaded);
      if (state.loaded) map.fitBounds(group.getBounds(), { maxZoom: 13, padding: [20, 20], animate: false });
      document.dispatchEvent(new CustomEvent("jxplan:editorlayer", { detail: { id: id, loaded: state.loaded } }));
    }

    /* ---- selecting, drawing, reshaping ---------------------------------------------------------------- */

    function stopReshape() {
      group.getLayers().forEach(function (layer) {
        if (layer.pm && layer.pm.enabled()) layer.pm.disable();
      });
      reshapeButton.classList.remove("jx-ed-active");
    }

    function clearErrorMarks() {
      group.getLayers().forEach(function (layer) {
        if (layer._jxError) {
          layer.unbindPopup();
          layer._jxError = false;
        }
      });
    }

    function clearSelection() {
      stopReshape();
      clearErrorMarks();
      if (state.selected && state.selected.layer && (state.selected.isNew || !state.selected.feature.geometry)) {
        group.removeLayer(state.selected.layer);
      }
      if (state.selected && state.selected.layer && state.selected.layer.getElement) {
        var node = state.selected.layer.getElement();
        if (node) node.classList.remove("jx-ed-selected");
      }
      state.selected = null;
      state.conflict = null;
      conflictBox.hidden = true;
      form.hidden = true;
      form.textContent = "";
      showKey();
    }

    async function select(layer) {
      if (state.busy || (state.selected && state.selected.layer === layer)) return;
      if (map.pm && map.pm.globalDrawModeEnabled && map.pm.globalDrawModeEnabled()) return;
      clearSelection();
      var id = layer.feature.id;
      if (state.check && String(state.check.featureId) !== String(id)) clearCheck();
      var response = await fetch(featureUrl(id), { headers: headers() });
      if (!response.ok) {
        say((await readProblem(response)).detail, "error");
        return;
      }
      var feature = await response.json();
      layer.feature = feature;
      state.selected = { id: id, etag: response.headers.get("ETag"), feature: feature, layer: layer, isNew: false };
      var node = layer.getElement && layer.getElement();
      if (node) node.classList.add("jx-ed-selected");
      fillForm(feature, {});
      say("已选择 Selected: " + (feature.properties.name_zh || feature.properties.code) + "(版本 version " +
        versionOf(state.selected.etag) + ")");
      showKey();
    }

    async function selectById(id) {
      if (state.busy) return;
      clearSelection();
      var response = await fetch(featureUrl(id), { headers: headers() });
      if (!response.ok) {
        say((await readProblem(response)).detail, "error");
        return;
      }
      var feature = await response.json();
      state.selected = { id: id, etag: response.headers.get("ETag"), feature: feature, layer: null, isNew: false };
      fillForm(feature, {});
      say("已选择 Selected: " + (feature.properties.name_zh || feature.properties.code) + "(无位置 no location)");
      showKey();
    }

    function startDrawing() {
      if (!state.layer) return;
      var placing = state.selected && !state.selected.layer && !state.selected.isNew;
      if (!placing) clearSelection();
      clearCheck();
      say("在地图上点击绘制;多边形点击第一个点结束。Click on the map to draw; close a polygon on its first point.");
      map.pm.enableDraw(state.layer.tool, { pathOptions: styleFor({ properties: {} }) });
    }

    map.on("pm:create", function (event) {
      var layer = event.layer;
      map.removeLayer(layer);
      var feature = layer.toGeoJSON();
      feature.properties = { status: "planned", accuracy: "approximate" };
      delete feature.id;
      var placing = state.selected && !state.selected.layer && !state.selected.isNew;
      if (placing) {
        // the drawn shape becomes the location of the selected feature that had none
        var shaped = { type: "Feature", id: state.selected.id, geometry: feature.geometry,
          properties: state.selected.feature.properties };
        state.selected.layer = addFeature(shaped) || layer;
        state.selected.layer.feature = state.selected.feature;
        fillForm(state.selected.feature, {});
        say("已绘制位置,请保存。Location drawn: save to keep it.");
        showKey();
        return;
      }
      var added = addFeature(feature) || layer;
      state.selected = { id: null, etag: null, feature: feature, layer: added, isNew: true };
      fillForm(feature, {});
      say("填写属性后保存。Fill in the properties, then save.");
      showKey();
    });

    function toggleReshape() {
      var selected = state.selected;
      if (!selected || !selected.layer.pm) return;
      if (selected.layer.pm.enabled()) {
        selected.layer.pm.disable();
        reshapeButton.classList.remove("jx-ed-active");
      } else {
        selected.layer.pm.enable({ allowSelfIntersection: true, draggable: true });
        reshapeButton.classList.add("jx-ed-active");
        say("拖动顶点修改形状,然后保存。Drag the vertices, then save.");
      }
    }

    /* ---- the form ------------------------------------------------------------------------------------- */

    function fieldKind(schema) {
      var t = types(schema);
      if (schema.enum) return "enum";
      if (t.indexOf("array") >= 0) return "list";
      if (t.indexOf("number") >= 0 || t.indexOf("integer") >= 0) return "number";
      if ((schema.maxLength || 0) > 300) return "text";
      return "string";
    }

    function fillForm(feature, fieldErrors) {
      form.textContent = "";
      form.hidden = false;
      var layer = state.layer;
      var props = (feature && feature.properties) || {};
      var title = state.selected && state.selected.isNew ? "新要素 New feature" : "要素 Feature " + state.selected.id;
      form.appendChild(el("h3", "jx-ed-formtitle", title));
      if (state.selected && !state.selected.layer && !state.selected.isNew) {
        form.appendChild(el("p", "jx-ed-hint", "此要素尚无位置:点击“绘制新要素”为它绘制。This feature has no location yet: use Draw to give it one."));
      }
      var more = el("details", "jx-ed-more");
      more.appendChild(el("summary", null, "更多字段 More fields"));
      layer.order.forEach(function (name) {
        var schema = layer.properties[name];
        if (schema.readOnly) return;
        var required = layer.required.indexOf(name) >= 0;
        var row = el("label", "jx-ed-field");
        row.dataset.field = name;
        var caption = el("span", "jx-ed-caption", (schema.title || name) + (required ? " *" : ""));
        caption.title = name + (schema.description ? ": " + schema.description : "");
        row.appendChild(caption);
        var kind = fieldKind(schema);
        var input;
        var value = props[name];
        if (kind === "enum") {
          input = el("select");
          if (!required) input.appendChild(new Option("—", ""));
          var labels = (cfg.labels && cfg.labels[name]) || {};
          schema.enum.forEach(function (option) {
            if (option === null) return;
            var text = labels[option] || String(option); // the labels end with the value's English word
            input.appendChild(new Option(text, String(option)));
          });
          input.value = present(value) ? String(value) : "";
        } else if (kind === "text") {
          input = el("textarea");
          input.rows = 3;
          input.value = present(value) ? String(value) : "";
        } else {
          input = el("input");
          input.type = kind === "number" ? "number" : "text";
          if (kind === "number") input.step = "any";
          if (kind === "list") {
            input.placeholder = "用、或逗号分隔 separate with 、 or ,";
            input.value = Array.isArray(value) ? value.join("、") : present(value) ? String(value) : "";
          } else {
            input.value = present(value) ? String(value) : "";
          }
        }
        input.name = name;
        input.dataset.kind = kind;
        row.appendChild(input);
        if (fieldErrors[name]) {
          row.classList.add("jx-ed-invalid");
          row.appendChild(el("span", "jx-ed-fielderror", fieldErrors[name]));
        }
        if (required || MAIN_FIELDS.indexOf(name) >= 0) {
          form.appendChild(row);
        } else {
          more.appendChild(row);
          if (fieldErrors[name] || present(value)) more.open = more.open || Boolean(fieldErrors[name]);
        }
      });
      form.appendChild(more);
      var comment = el("label", "jx-ed-field jx-ed-comment");
      comment.appendChild(el("span", "jx-ed-caption", "修改说明 Comment (history)"));
      var commentInput = el("input");
      commentInput.name = "__comment";
      commentInput.type = "text";
      comment.appendChild(commentInput);
      form.appendChild(comment);

      if (state.formError) form.appendChild(el("p", "jx-ed-msg jx-ed-error jx-ed-formerror", state.formError));
      var actions = el("div", "jx-ed-actions");
      var saveButton = el("button", "jx-ed-button jx-ed-save", "保存 Save");
      saveButton.type = "submit";
      var canEdit = Boolean(state.caller && state.caller.role !== "reader");
      saveButton.disabled = !canEdit;
      actions.appendChild(saveButton);
      var checkButton = button("检查 Check", "jx-ed-checkbtn", function () {
        runCheck(false);
      });
      checkButton.title = "选址检查:与其他规划要素的冲突 Site check: conflicts with other plan items";
      checkButton.disabled = !analysis;
      actions.appendChild(checkButton);
      if (state.selected && !state.selected.isNew) {
        var del = button("删除 Delete", "jx-ed-delete", removeSelected);
        del.disabled = !canEdit;
        actions.appendChild(del);
        var history = el("a", "jx-ed-history", "历史 History");
        history.href = featureUrl(state.selected.id) + "/history";
        history.target = "_blank";
        actions.appendChild(history);
      }
      actions.appendChild(button("取消 Cancel", "jx-ed-cancel", function () {
        if (state.selected && !state.selected.isNew && state.selected.feature.geometry) restoreShape(state.selected);
        clearSelection();
        clearCheck();
        say("");
      }));
      if (!canEdit) actions.appendChild(el("span", "jx-ed-hint", "保存需要编辑密钥 Saving needs an editor key"));
      form.appendChild(actions);
    }

    function formProperties() {
      var props = {};
      Array.prototype.forEach.call(form.querySelectorAll("[name]"), function (input) {
        var name = input.name;
        if (name === "__comment") return;
        var raw = input.value.trim();
        var kind = input.dataset.kind;
        if (raw === "") {
          if (kind === "list") props[name] = [];
          return;
        }
        if (kind === "number") {
          props[name] = Number(raw);
        } else if (kind === "list") {
          props[name] = raw.split(/[、,，;；]\s*/).map(function (s) {
            return s.trim();
          }).filter(Boolean);
        } else {
          props[name] = raw;
        }
      });
      return props;
    }

    function restoreShape(selected) {
      // put the stored geometry back after an abandoned reshape
      if (!selected.feature || !selected.layer) return;
      group.removeLayer(selected.layer);
      var again = addFeature(selected.feature);
      if (again) selected.layer = again;
    }

    function markGeometryError(layer, text) {
      if (!layer) return;
      layer._jxError = true;
      var center = layer.getBounds ? layer.getBounds().getCenter() : layer.getLatLng();
      layer.bindPopup(el("div", "jx-ed-geomerror", text), { className: "jx-ed-errorpopup", autoPan: true });
      layer.openPopup(center);
    }

    function showProblem(problem) {
      state.lastProblem = problem;
      var fieldErrors = {};
      var geometryReasons = [];
      problem.violations.forEach(function (v) {
        var field = String(v.where || "").split(".")[0];
        if (field === "geometry") geometryReasons.push(v.reason);
        else if (state.layer && state.layer.properties[field]) fieldErrors[field] = v.reason;
      });
      say(problem.title + ": " + problem.detail, "error");
      state.formError = problem.detail;
      if (state.selected) {
        var kept = formProperties();
        var comment = form.querySelector('[name="__comment"]').value;
        fillForm({ properties: kept }, fieldErrors);
        state.formError = null;
        form.querySelector('[name="__comment"]').value = comment;
        if (geometryReasons.length) markGeometryError(state.selected.layer, "几何无效 Geometry: " + geometryReasons.join("; "));
      }
    }

    /* ---- saving ----------------------------------------------------------------------------------------- */

    function featureUrl(id) {
      return "/collections/" + encodeURIComponent(state.layer.id) + "/items/" + encodeURIComponent(String(id));
    }

    function currentGeometry(selected) {
      if (!selected.layer) return selected.feature.geometry || null;
      return selected.layer.toGeoJSON().geometry;
    }

    async function save(overwrite) {
      var selected = state.selected;
      if (!selected || state.busy) return;
      clearErrorMarks();
      var commentInput = form.querySelector('[name="__comment"]');
      var comment = commentInput ? commentInput.value.trim() : "";
      var body = { type: "Feature", geometry: currentGeometry(selected), properties: formProperties() };
      // the shape is checked as it is saved, unless that very shape was just checked: a warning, not a block
      if (body.geometry && !(state.check && state.check.geometry === JSON.stringify(body.geometry))) runCheck(true);
      var extra = { "Content-Type": "application/geo+json" };
      if (comment) extra["X-Edit-Comment"] = encodeURIComponent(comment);
      var url;
      var method;
      if (selected.isNew) {
        url = "/collections/" + encodeURIComponent(state.layer.id) + "/items";
        method = "POST";
      } else {
        url = featureUrl(selected.id);
        method = "PUT";
        extra["If-Match"] = overwrite && state.conflict ? state.conflict.etag : selected.etag;
      }
      state.busy = true;
      say("保存中… saving…");
      var response;
      try {
        response = await fetch(url, { method: method, headers: headers(extra), body: JSON.stringify(body) });
      } catch (error) {
        state.busy = false;
        say("无法连接服务器 Cannot reach the server: " + error.message, "error");
        return;
      }
      state.busy = false;
      if (response.status === 412) {
        await showConflict(selected, body);
        return;
      }
      if (!response.ok) {
        showProblem(await readProblem(response));
        return;
      }
      var id = selected.isNew ? idOf(response.headers.get("Location")) : selected.id;
      await afterSave(selected, id, selected.isNew ? "已创建 Created" : "已保存 Saved");
    }

    async function afterSave(selected, id, verb) {
      stopReshape();
      var fresh = await fetch(featureUrl(id), { headers: headers() });
      var feature = await fresh.json();
      if (selected.layer) group.removeLayer(selected.layer);
      state.selected = null;
      state.conflict = null;
      conflictBox.hidden = true;
      var added = addFeature(feature);
      if (state.check && state.check.featureId === selected.id) state.check.featureId = id; // a new one's check
      if (added) {
        await select(added);
      } else {
        clearSelection();
      }
      say(verb + ": " + (feature.properties.name_zh || feature.properties.code) + "(版本 version " +
        versionOf(fresh.headers.get("ETag")) + ")", "ok");
      document.dispatchEvent(new CustomEvent("jxplan:editorsaved", { detail: { id: id } }));
    }

    async function removeSelected() {
      var selected = state.selected;
      if (!selected || selected.isNew) return;
      var name = selected.feature.properties.name_zh || selected.feature.properties.code;
      if (!window.confirm("删除 " + name + "?可以从历史中恢复。Delete it? It can be restored from history.")) return;
      var response = await fetch(featureUrl(selected.id), {
        method: "DELETE",
        headers: headers({ "If-Match": selected.etag }),
      });
      if (response.status === 412) {
        await showConflict(selected, null);
        return;
      }
      if (!response.ok) {
        showProblem(await readProblem(response));
        return;
      }
      if (selected.layer) group.removeLayer(selected.layer);
      state.selected = null;
      clearSelection();
      say("已删除 Deleted: " + name + "(可在 /collections/" + state.layer.id + "/deleted 恢复 restorable)", "ok");
    }

    /* ---- 412: someone else saved first ------------------------------------------------------------------ */

    async function showConflict(selected, mine) {
      var response = await fetch(featureUrl(selected.id), { headers: headers() });
      if (!response.ok) {
        say("这个要素已被删除 This feature was deleted meanwhile.", "error");
        return;
      }
      var theirs = await response.json();
      var etag = response.headers.get("ETag");
      state.conflict = { etag: etag, feature: theirs, mine: mine };
      conflictBox.textContent = "";
      conflictBox.hidden = false;
      conflictBox.appendChild(el("h3", null, "版本冲突 Someone else saved first"));
      conflictBox.appendChild(el("p", null,
        "您编辑的是版本 " + versionOf(selected.etag) + ",服务器上现在是版本 " + versionOf(etag) +
        "。You edited version " + versionOf(selected.etag) + "; the server now holds version " + versionOf(etag) + "."));
      var changes = el("dl", "jx-ed-changes");
      var before = selected.feature.properties || {};
      var now = theirs.properties || {};
      Object.keys(Object.assign({}, before, now)).forEach(function (name) {
        if (JSON.stringify(before[name]) === JSON.stringify(now[name])) return;
        changes.appendChild(el("dt", null, name));
        changes.appendChild(el("dd", null, JSON.stringify(before[name]) + " → " + JSON.stringify(now[name])));
      });
      if (JSON.stringify(selected.feature.geometry) !== JSON.stringify(theirs.geometry)) {
        changes.appendChild(el("dt", null, "geometry"));
        changes.appendChild(el("dd", null, "形状已改变 reshaped"));
      }
      if (changes.childNodes.length) conflictBox.appendChild(changes);
      var reload = button("载入对方版本 Load their version", "jx-ed-reload", function () {
        stopReshape();
        if (selected.layer) group.removeLayer(selected.layer);
        state.selected = null;
        conflictBox.hidden = true;
        var added = addFeature(theirs);
        if (added) select(added);
        else selectById(theirs.id);
        say("已载入版本 Loaded version " + versionOf(etag), "ok");
      });
      conflictBox.appendChild(reload);
      if (mine) {
        conflictBox.appendChild(button("用我的覆盖 Save mine over it", "jx-ed-overwrite", function () {
          save(true);
        }));
      }
      say("保存被拒绝:版本已变化 (412)。Not saved: the feature changed meanwhile (412).", "error");
    }

    showKey();
    if (state.key) useKey(state.key);
  }

  window.jxplan = window.jxplan || {};
  window.jxplan.editor = editor;
})();
