// The visual automation designer: a form per step, kept in sync with the JSON view both ways.
// The JSON textarea is what the form submits, so the page still works without this script
// and the server validates exactly what the user sees (the API's own validation).
(function () {
  "use strict";

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (attrs[k] !== null && attrs[k] !== undefined) node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  function getPath(obj, path) {
    return path.split(".").reduce(function (o, k) {
      return o && typeof o === "object" ? o[k] : undefined;
    }, obj);
  }

  function setPath(obj, path, value) {
    var keys = path.split(".");
    var parents = [obj];
    var o = obj;
    for (var i = 0; i < keys.length - 1; i++) {
      if (!o[keys[i]] || typeof o[keys[i]] !== "object") {
        if (value === undefined) return;
        o[keys[i]] = {};
      }
      o = o[keys[i]];
      parents.push(o);
    }
    var last = keys[keys.length - 1];
    if (value === undefined) delete o[last]; else o[last] = value;
    // An object emptied by clearing its last field goes too ({"webhook": {}} helps nobody).
    for (var j = keys.length - 2; j >= 0; j--) {
      if (Object.keys(parents[j + 1]).length === 0) delete parents[j][keys[j]]; else break;
    }
  }

  function fieldId(index, name) { return "s" + index + "-" + name.replace(/\./g, "_"); }

  function Designer(root) {
    this.root = root;
    this.forms = JSON.parse(root.getAttribute("data-forms"));
    this.common = JSON.parse(root.getAttribute("data-common"));
    // The same editor serves automation steps ({"action": …}) and template elements ({"type": …}).
    this.typeKey = root.getAttribute("data-type-key") || "action";
    this.noun = root.getAttribute("data-noun") || "step";
    this.json = document.getElementById(root.getAttribute("data-json"));
    this.jsonError = document.getElementById("steps-json-error");
    this.list = root.querySelector(".dsteps");
    this.steps = [];
    this.invalid = {};
    var err = root.getAttribute("data-error-message");
    this.serverError = err ? {
      step: root.getAttribute("data-error-step"),
      field: root.getAttribute("data-error-field"),
      message: err
    } : null;
    this.fromJson(true);
    this.bind();
  }

  Designer.prototype.fromJson = function (initial) {
    var parsed;
    try {
      parsed = JSON.parse(this.json.value || "[]");
    } catch (e) {
      this.showJsonError("The JSON is not valid: " + e.message);
      if (initial) this.render();
      return;
    }
    if (!Array.isArray(parsed) || !parsed.every(function (s) { return s && typeof s === "object"; })) {
      this.showJsonError("The JSON must be an array of " + this.noun + " objects.");
      return;
    }
    this.showJsonError(null);
    this.steps = parsed;
    this.invalid = {};
    this.render();
  };

  Designer.prototype.showJsonError = function (message) {
    this.jsonError.textContent = message || "";
    this.jsonError.hidden = !message;
    if (message) this.json.setAttribute("aria-invalid", "true");
    else this.json.removeAttribute("aria-invalid");
  };

  Designer.prototype.toJson = function () {
    this.json.value = JSON.stringify(this.steps, null, 2);
    this.showJsonError(null);
    // Let listeners (the template preview) see the change as if the JSON had been typed.
    this.json.dispatchEvent(new CustomEvent("designer-change", { bubbles: true }));
  };

  Designer.prototype.bind = function () {
    var self = this;
    this.json.addEventListener("input", function () { self.serverError = null; self.fromJson(false); });
    var add = document.getElementById("add-step");
    add.addEventListener("click", function () {
      var item = {};
      item[self.typeKey] = document.getElementById("new-step-type").value;
      self.steps.push(item);
      self.toJson();
      self.render();
      var first = self.list.lastElementChild.querySelector("input, select, textarea");
      if (first) first.focus();
    });
    this.root.closest("form").addEventListener("submit", function (event) {
      var bad = Object.keys(self.invalid);
      if (bad.length) {
        event.preventDefault();
        var field = document.getElementById(bad[0]);
        if (field) field.focus();
      }
    });
  };

  Designer.prototype.move = function (index, by, focusClass) {
    var to = index + by;
    if (to < 0 || to >= this.steps.length) return;
    var step = this.steps.splice(index, 1)[0];
    this.steps.splice(to, 0, step);
    this.invalid = {};
    this.toJson();
    this.render();
    var button = this.list.children[to].querySelector("." + focusClass);
    if (button && !button.disabled) button.focus();
    else this.list.children[to].querySelector("h3").focus();
    this.announce("Moved to position " + (to + 1) + ".");
  };

  Designer.prototype.remove = function (index) {
    this.steps.splice(index, 1);
    this.invalid = {};
    this.toJson();
    this.render();
    var next = this.list.children[Math.min(index, this.steps.length - 1)];
    (next ? next.querySelector("h3") : document.getElementById("new-step-type")).focus();
    this.announce(this.noun + " " + (index + 1) + " removed.");
  };

  Designer.prototype.announce = function (text) {
    document.getElementById("designer-status").textContent = text;
  };

  Designer.prototype.render = function () {
    var self = this;
    this.list.textContent = "";
    this.steps.forEach(function (step, i) { self.list.appendChild(self.renderStep(step, i)); });
    document.getElementById("no-steps").hidden = this.steps.length > 0;
    if (this.serverError) this.placeServerError();
  };

  Designer.prototype.renderStep = function (step, i) {
    var self = this;
    var n = i + 1;
    var action = String(step[this.typeKey]);
    var noun = this.noun;
    var fields = (this.forms[action] || []).concat(this.common);
    var title = el("h3", { id: "step-title-" + i, tabindex: "-1", text: n + ". " + action });
    function button(label, cls, text, onClick, disabled) {
      var b = el("button", { type: "button", "class": "small secondary " + cls, "aria-label": label, text: text });
      b.disabled = !!disabled;
      b.addEventListener("click", onClick);
      return b;
    }
    var tools = el("div", { "class": "dstep-tools" }, [
      button("Move " + noun + " " + n + " up", "up", "↑ Up", function () { self.move(i, -1, "up"); }, i === 0),
      button("Move " + noun + " " + n + " down", "down", "↓ Down", function () { self.move(i, 1, "down"); }, i === this.steps.length - 1),
      button("Remove " + noun + " " + n, "remove danger", "Remove", function () { self.remove(i); })
    ]);
    var body = el("div", { "class": "dfields" });
    if (!this.forms[action]) {
      body.appendChild(el("p", { "class": "alert", text: "Unknown " + this.typeKey + " \"" + action + "\": edit it in the JSON view." }));
    }
    fields.forEach(function (f) { body.appendChild(self.renderField(step, i, f)); });
    return el("li", { "class": "dstep card", "data-index": String(i), "aria-labelledby": "step-title-" + i }, [
      el("div", { "class": "dstep-head" }, [title, tools]),
      el("div", { "class": "step-error", id: "s" + i + "-error", hidden: "" }),
      body
    ]);
  };

  Designer.prototype.renderField = function (step, i, f) {
    var self = this;
    var id = fieldId(i, f.name);
    var value = getPath(step, f.name);
    var wrap = el("div", { "class": "dfield dfield-" + f.kind });
    var helpId = f.help ? id + "-help" : null;
    wrap.appendChild(el("label", { "for": id, text: f.label + (f.required ? " (required)" : "") }));
    var input;
    if (f.kind === "select") {
      input = el("select", { id: id });
      var options = f.options.slice();
      if (value !== undefined && options.indexOf(String(value)) < 0) options.push(String(value));
      options.forEach(function (o) {
        var opt = el("option", { value: o, text: o === "" ? "(default)" : o });
        if (String(value === undefined ? "" : value) === o) opt.selected = true;
        input.appendChild(opt);
      });
    } else if (f.kind === "json") {
      input = el("textarea", { id: id, rows: "3", spellcheck: "false" });
      input.value = value === undefined ? "" : JSON.stringify(value, null, 2);
    } else if (f.kind === "longtext") {
      input = el("textarea", { id: id, rows: "4" });
      input.value = value === undefined ? "" : String(value);
    } else {
      input = el("input", { id: id, autocomplete: "off", inputmode: f.kind === "number" ? "decimal" : null });
      input.value = value === undefined ? "" : (typeof value === "string" ? value : JSON.stringify(value));
    }
    // No name attribute: the fields are not submitted, the JSON view is.
    var errId = id + "-error";
    var err = el("p", { "class": "field-error", id: errId, hidden: "" });
    var described = [helpId, errId].filter(Boolean).join(" ");
    input.setAttribute("aria-describedby", described);
    input.addEventListener(f.kind === "select" ? "change" : "input", function () {
      self.onField(step, f, input, err);
    });
    wrap.appendChild(input);
    if (f.help) wrap.appendChild(el("p", { "class": "help", id: helpId, text: f.help }));
    wrap.appendChild(err);
    if (f.kind === "condition") wrap.appendChild(this.conditionBuilder(i, input));
    return wrap;
  };

  Designer.prototype.onField = function (step, f, input, err) {
    var raw = input.value;
    var value;
    delete this.invalid[input.id];
    this.clearError(input, err);
    if (raw.trim() === "") {
      value = undefined;
    } else if (f.kind === "longtext") {
      value = raw;
    } else if (f.kind === "json" || (f.kind === "text" && /^\s*[\[{]/.test(raw))) {
      try {
        value = JSON.parse(raw);
      } catch (e) {
        if (f.kind === "json") {
          this.invalid[input.id] = true;
          this.setError(input, err, "Not valid JSON: " + e.message);
          return;
        }
        value = raw;
      }
    } else if (f.kind === "number" && /^-?\d+(\.\d+)?$/.test(raw.trim())) {
      value = Number(raw.trim());
    } else {
      value = raw;
    }
    setPath(step, f.name, value);
    this.toJson();
  };

  Designer.prototype.setError = function (input, err, message) {
    err.textContent = message;
    err.hidden = false;
    input.setAttribute("aria-invalid", "true");
  };

  Designer.prototype.clearError = function (input, err) {
    err.textContent = "";
    err.hidden = true;
    input.removeAttribute("aria-invalid");
  };

  Designer.prototype.placeServerError = function () {
    var e = this.serverError;
    if (e.step === null || e.step === "") return;
    var index = Number(e.step);
    var item = this.list.children[index];
    if (!item) return;
    var input = null;
    if (e.field) {
      var fields = (this.forms[this.steps[index][this.typeKey]] || []).concat(this.common);
      var match = fields.filter(function (f) {
        return f.name === e.field || f.name.indexOf(e.field + ".") === 0 || e.field.indexOf(f.name + ".") === 0;
      })[0];
      if (match) input = document.getElementById(fieldId(index, match.name));
    }
    if (input) {
      this.setError(input, document.getElementById(input.id + "-error"), e.message);
    } else {
      var box = document.getElementById("s" + index + "-error");
      box.textContent = e.message;
      box.hidden = false;
      box.className = "step-error alert";
    }
  };

  Designer.prototype.conditionBuilder = function (i, target) {
    var base = "s" + i + "-cond";
    var path = el("input", { id: base + "-path", placeholder: "data.plan", autocomplete: "off" });
    var op = el("select", { id: base + "-op" });
    [["===", "equals"], ["!==", "differs from"], [">", "greater than"], ["<", "less than"],
      ["exists", "is set"], ["truthy", "is true"]].forEach(function (o) {
      op.appendChild(el("option", { value: o[0], text: o[1] }));
    });
    var value = el("input", { id: base + "-value", placeholder: "\"pro\" or 3", autocomplete: "off" });
    var add = el("button", { type: "button", "class": "small secondary", text: "Add to condition" });
    var self = this;
    add.addEventListener("click", function () {
      var left = path.value.trim();
      if (!left) { path.focus(); return; }
      var right = value.value.trim();
      if (right !== "" && !/^(-?\d+(\.\d+)?|true|false|null)$/.test(right) && !/^["'].*["']$/.test(right)) {
        right = JSON.stringify(right);
      }
      var clause;
      if (op.value === "exists") clause = left + " !== undefined";
      else if (op.value === "truthy") clause = "!!" + left;
      else clause = left + " " + op.value + " " + (right === "" ? "\"\"" : right);
      target.value = target.value.trim() ? "(" + target.value.trim() + ") && " + clause : clause;
      target.dispatchEvent(new Event("input"));
      self.announce("Condition is now: " + target.value);
    });
    return el("fieldset", { "class": "cond-builder" }, [
      el("legend", { text: "Build a condition" }),
      el("label", { "for": path.id, text: "Value at" }), path,
      el("label", { "for": op.id, text: "Test" }), op,
      el("label", { "for": value.id, text: "Against" }), value,
      add
    ]);
  };

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("designer");
    if (root) {
      root.hidden = false;
      window.relayboxDesigner = new Designer(root);
    }
  });
})();
