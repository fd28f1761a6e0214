// The upload page: one X-ray -> POST /predict (one sorted bar per label of the served model) -> POST /gradcam
// (overlay of the top finding, of the label chosen, or one panel per label). The labels, their count and the
// operating points come from the model's answers (/predict, /model), never from this page.
// Plain DOM, no dependencies, served by the service (CSP: this origin only).
// The API key lives in the input field alone: never in localStorage, sessionStorage or a cookie.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const keyInput = $("api-key");
  const fileInput = $("file");
  const dropZone = $("drop-zone");
  const status = $("status");
  const error = $("error");
  const scores = $("scores");
  const inputInfo = $("input-info");
  const bars = $("bars");
  const pointInfo = $("point-info");
  const labelsInfo = $("labels-info");
  const pointField = $("point-field");
  const pointSelect = $("operating-point");
  const showAll = $("show-all");
  const figure = $("explanation");
  const overlay = $("overlay");
  const caption = $("overlay-caption");
  const overlayEmpty = $("overlay-empty");
  const showBoxes = $("show-boxes");
  let shownName = null;
  const modelCard = $("model-card");
  const modelError = $("model-error");

  let current = null; // the File shown, kept in memory to ask for another pathology's map
  let upload = 0; // a newer upload makes the answers to older ones stale
  let explanation = 0; // likewise for Grad-CAM requests
  let overlayUrl = null;

  // A header value must be ISO-8859-1; fetch throws a TypeError on anything else, which would read as "offline".
  function apiHeaders() {
    const key = keyInput.value;
    if (!/^[\x20-\x7e]*$/.test(key)) {
      throw new PageError("The API key can hold only printable ASCII characters.");
    }
    return key ? { "X-API-Key": key } : {};
  }

  class PageError extends Error {}

  // The API's own words: every error is {"detail", "code"}. Anything else (a proxy's page) gets the status line.
  async function apiError(response) {
    try {
      const body = await response.json();
      if (body && typeof body.detail === "string") {
        return new PageError(body.detail);
      }
    } catch (ignored) {
      // not JSON
    }
    return new PageError(`The service answered ${response.status} ${response.statusText}`.trim() + ".");
  }

  async function call(path, init) {
    let response;
    try {
      response = await fetch(path, { ...init, headers: apiHeaders(), cache: "no-store" });
    } catch (err) {
      if (err instanceof PageError) throw err;
      throw new PageError("The service could not be reached.");
    }
    if (!response.ok) throw await apiError(response);
    return response;
  }

  // The file's own name is not sent: the service reads the format from the bytes, and a name can hold a patient's.
  function formOf(file) {
    const form = new FormData();
    form.append("file", file, "upload");
    return form;
  }

  function say(text) {
    status.textContent = text;
  }

  function fail(err) {
    error.textContent = err instanceof PageError ? err.message : "Something went wrong in this page.";
    say("");
  }

  function clearResults() {
    error.textContent = "";
    bars.replaceChildren();
    inputInfo.textContent = "";
    pointInfo.textContent = "";
    scores.hidden = true;
    figure.hidden = true;
    overlayEmpty.hidden = false;
    if (overlayUrl) URL.revokeObjectURL(overlayUrl);
    overlayUrl = null;
    overlay.removeAttribute("src");
  }

  // One row per pathology: a button (name), a track with its fill (width = probability), the value; when the
  // model has operating points, the threshold as a tick in the track and "above/below" in words under it.
  function renderBars(probabilities, findings) {
    const sorted = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
    const rows = sorted.map(([name, p]) => {
      const row = document.createElement("li");
      row.className = "bar-row";
      row.dataset.pathology = name;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "bar-name";
      button.setAttribute("aria-pressed", "false");
      const hidden = document.createElement("span");
      hidden.className = "visually-hidden";
      hidden.textContent = "Show Grad-CAM for ";
      button.append(hidden, name);
      button.addEventListener("click", () => explain(name));
      const track = document.createElement("span");
      track.className = "track";
      track.setAttribute("aria-hidden", "true");
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.width = `${(100 * p).toFixed(2)}%`;
      track.append(fill);
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = p.toFixed(3);
      row.append(button, track, value);
      const finding = findings && findings[name];
      if (finding) {
        const mark = document.createElement("span");
        mark.className = "mark";
        mark.style.left = `${(100 * finding.threshold).toFixed(2)}%`;
        track.append(mark);
        row.classList.toggle("above", finding.above);
        const decision = document.createElement("span");
        decision.className = "decision";
        const side = finding.above ? "at or above" : "below";
        const shaky = finding.unreliable ? " (unreliable: fewer than 10 positives where it was chosen)" : "";
        decision.textContent = `${side} the threshold ${finding.threshold.toFixed(3)}${shaky}`;
        row.append(decision);
      }
      return row;
    });
    bars.replaceChildren(...rows);
    scores.hidden = false;
    return sorted;
  }

  // The model's operating points as choices; the model's default first selected. Hidden when it has none.
  function offerPoints(points) {
    pointSelect.replaceChildren();
    const names = points && points.points ? Object.keys(points.points) : [];
    for (const name of names) {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = points.points[name].description ? `${name}: ${points.points[name].description}` : name;
      option.selected = name === points.default;
      pointSelect.append(option);
    }
    pointField.hidden = names.length === 0;
  }

  // Which operating point drew the ticks, and on what data it was chosen; or the service's note when none.
  function describePoint(body) {
    const point = body.operating_point;
    if (!point) return body.note || "";
    const chosen = point.chosen_on ? `, chosen on ${point.chosen_on}` : "";
    return `Thresholds: operating point "${point.name}" (${point.description}${chosen}). A tick marks each.`;
  }

  function markShown(name) {
    for (const button of bars.querySelectorAll(".bar-name")) {
      const shown = button.closest(".bar-row").dataset.pathology === name;
      button.setAttribute("aria-pressed", String(shown));
    }
  }

  async function explain(name) {
    if (!current) return;
    const mine = ++explanation;
    error.textContent = "";
    say(`Computing the Grad-CAM map for ${name}…`);
    try {
      const query = new URLSearchParams({ pathology: name });
      if (showBoxes.checked) query.set("boxes", "true");
      const response = await call(`gradcam?${query}`, { method: "POST", body: formOf(current) });
      const png = await response.blob();
      if (mine !== explanation) return;
      const probability = Number(response.headers.get("X-Probability"));
      if (overlayUrl) URL.revokeObjectURL(overlayUrl);
      overlayUrl = URL.createObjectURL(png);
      overlay.src = overlayUrl;
      overlay.alt = `Grad-CAM heatmap for ${name} laid over the uploaded X-ray`;
      const flat = response.headers.get("X-Heatmap") === "flat";
      caption.textContent = flat
        ? `${name}, p = ${probability.toFixed(3)}: flat map — the model's Grad-CAM for it has no spatial variation, ` +
          "so nothing is drawn (this is not attention spread evenly)."
        : `${name}, p = ${probability.toFixed(3)}: where the model looked for it (red: more` +
          (showBoxes.checked ? "; white boxes: regions above 60 and 180 of 255" : "") + ").";
      shownName = name;
      figure.hidden = false;
      overlayEmpty.hidden = true;
      markShown(name);
      say(`Grad-CAM map shown for ${name}.`);
    } catch (err) {
      if (mine === explanation) fail(err);
    }
  }

  // One PNG with a Grad-CAM panel per label of the model (its grid adapts to the label count).
  async function explainAll() {
    if (!current) return;
    const mine = ++explanation;
    error.textContent = "";
    say("Computing the Grad-CAM maps for every label…");
    try {
      const query = new URLSearchParams({ pathology: "all" });
      const response = await call(`gradcam?${query}`, { method: "POST", body: formOf(current) });
      const png = await response.blob();
      if (mine !== explanation) return;
      if (overlayUrl) URL.revokeObjectURL(overlayUrl);
      overlayUrl = URL.createObjectURL(png);
      overlay.src = overlayUrl;
      const count = bars.querySelectorAll(".bar-row").length;
      overlay.alt = `Grad-CAM heatmaps for all ${count} labels, one panel each, laid over the uploaded X-ray`;
      caption.textContent = `All ${count} labels, one panel each, titled with the probability (red: more).`;
      figure.hidden = false;
      overlayEmpty.hidden = true;
      markShown(null);
      say(`Grad-CAM maps shown for all ${count} labels.`);
    } catch (err) {
      if (mine === explanation) fail(err);
    }
  }

  async function score(file, keepMap) {
    const mine = ++upload;
    current = null;
    if (keepMap) {
      error.textContent = "";
    } else {
      explanation++;
      clearResults();
    }
    say("Scoring the image…");
    try {
      const point = pointField.hidden ? "" : pointSelect.value;
      const path = point ? `predict?${new URLSearchParams({ operating_point: point })}` : "predict";
      const response = await call(path, { method: "POST", body: formOf(file) });
      const body = await response.json();
      if (mine !== upload) return;
      current = file;
      const sorted = renderBars(body.probabilities, body.findings);
      const count = sorted.length;
      const plural = count === 1 ? "" : "s";
      labelsInfo.textContent = `The model's ${count} label${plural}, most probable first. Choose one to see its map.`;
      pointInfo.textContent = describePoint(body);
      const input = body.input;
      inputInfo.textContent = `Read as ${input.format.toUpperCase()}, ${input.width} × ${input.height} px.`;
      say(`Most probable: ${sorted[0][0]}, ${sorted[0][1].toFixed(3)}.`);
      if (!keepMap) await explain(sorted[0][0]);
    } catch (err) {
      if (mine === upload) fail(err);
    }
  }

  function addTerm(term, text) {
    if (text === undefined || text === null || text === "") return;
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = String(text);
    modelCard.append(dt, dd);
  }

  // provenance.data as the training side records it: counts, the image folder and labels file (names only).
  function describeData(data) {
    if (!data || typeof data !== "object") return data;
    const counts = [];
    if (Number.isFinite(data.n_train)) counts.push(`${data.n_train} training`);
    if (Number.isFinite(data.n_val)) counts.push(`${data.n_val} validation`);
    const parts = counts.length > 0 ? [`${counts.join(" and ")} images`] : [];
    const names = { images: "image folder", labels: "labels file" };
    for (const [key, value] of Object.entries(data)) {
      if (key.startsWith("n_") || key.endsWith("sha256") || typeof value !== "string") continue;
      parts.push(`${names[key] || key}: ${value}`);
    }
    return parts.join("; ");
  }

  async function loadModelCard() {
    modelCard.replaceChildren();
    modelError.textContent = "";
    try {
      const card = await (await call("model", {})).json();
      const provenance = (card.training && card.training.provenance) || {};
      const auroc = card.metrics && card.metrics.val_mean_auroc;
      addTerm("Name", `${card.name} ${card.version}`);
      addTerm("Labels", Array.isArray(card.labels) ? `${card.labels.length}: ${card.labels.join(", ")}` : undefined);
      offerPoints(card.operating_points);
      addTerm("Training data", describeData(provenance.data));
      addTerm("Validation mean AUROC", Number.isFinite(auroc) ? auroc.toFixed(3) : undefined);
      addTerm("Note", provenance.note);
      addTerm("Input size", card.preprocessing && `${card.preprocessing.image_size} px`);
      addTerm("Runs on", `${card.device}, ${card.backend}, ${card.precision}`);
      addTerm("Checkpoint SHA-256", card.sha256);
    } catch (err) {
      modelError.textContent = err instanceof PageError ? err.message : "The model card could not be shown.";
    }
  }

  fileInput.addEventListener("change", () => {
    if (fileInput.files.length > 0) score(fileInput.files[0]);
  });
  keyInput.addEventListener("change", loadModelCard);
  // Another operating point re-scores the same image (its thresholds and decisions change; the map shown stays).
  pointSelect.addEventListener("change", () => {
    if (current) score(current, true);
  });
  showAll.addEventListener("click", explainAll);
  showBoxes.addEventListener("change", () => {
    if (shownName) explain(shownName);
  });
  for (const type of ["dragenter", "dragover"]) {
    dropZone.addEventListener(type, (event) => {
      event.preventDefault();
      dropZone.classList.add("dragging");
    });
  }
  dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropZone.classList.remove("dragging");
    const files = event.dataTransfer.files;
    if (files.length > 0) score(files[0]);
  });
  // A file dropped beside the zone must not make the browser navigate away to it.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());

  loadModelCard();
})();
