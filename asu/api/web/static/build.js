// The build page: pick a version and a device, edit packages, build, download.
"use strict";

const POLL_MS = 1000;
// The stages a build goes through (the server's "stage" field), in order.
const STAGES = [
  "init", "download_imagebuilder", "unpack_imagebuilder", "prepare_imagebuilder",
  "make_info", "make_manifest", "make_image", "sign_images", "store_images",
];
const MAX_MATCHES = 20;

let devices = [];
let chosen = null;
let timer = null;

async function loadVersions() {
  const { status, body } = await getJSON("/api/v1/versions");
  const select = $("version");
  select.replaceChildren();
  if (status !== 200 || !body.length) {
    $("version-note").textContent = "no versions known yet";
    return;
  }
  for (const version of body) select.append(make("option", version, { value: version }));
  await loadDevices();
}

async function loadDevices() {
  const version = $("version").value;
  const search = $("search");
  search.disabled = true;
  $("version-note").textContent = "loading devices…";
  const { status, body } = await getJSON(`/api/v1/devices/${encodeURIComponent(version)}`);
  devices = status === 200 ? body : [];
  $("version-note").textContent = `${devices.length} devices`;
  search.dataset.version = version;
  search.disabled = false;
  chooseNone();
  showMatches();
}

function containsAll(text, words) {
  const lower = text.toLowerCase();
  return words.every((word) => lower.includes(word));
}

// Each device matching every word, with the titles to show: those that match,
// else (matched by board name or profile id) its first title.
function matches(query) {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return [];
  const found = [];
  for (const device of devices) {
    if (!containsAll([...device.titles, ...device.names, device.id].join(" "), words)) continue;
    const titles = device.titles.filter((title) => containsAll(title, words));
    found.push({ device, titles: titles.length ? titles : device.titles.slice(0, 1) });
  }
  return found;
}

function showMatches() {
  const list = $("matches");
  list.replaceChildren();
  const found = matches($("search").value);
  for (const { device, titles } of found.slice(0, MAX_MATCHES)) {
    for (const title of titles) {
      const item = make("li", null, { role: "option", "data-profile": device.id });
      item.append(make("span", title), make("small", device.target));
      item.addEventListener("click", () => chooseDevice(device, title));
      list.append(item);
    }
  }
  if (found.length > MAX_MATCHES) {
    list.append(make("li", `… ${found.length - MAX_MATCHES} more, type more of the name`, { class: "more" }));
  }
}

function chooseNone() {
  chosen = null;
  $("device").hidden = true;
}

async function chooseDevice(device, title) {
  const version = $("version").value;
  const [target, subtarget] = device.target.split("/");
  const url = `/api/v1/devices/${[version, target, subtarget, device.id].map(encodeURIComponent).join("/")}`;
  const { status, body } = await getJSON(url);
  if (status !== 200) {
    showFailure(body);
    return;
  }
  chosen = body;
  $("search").value = title;
  $("matches").replaceChildren();
  $("device-title").textContent = title;
  $("device-target").textContent = body.target;
  $("device-profile").textContent = body.id;
  $("device-code").textContent = body.version_code || version;
  $("packages").value = body.packages.join("\n");
  $("device").hidden = false;
}

function packageList() {
  return $("packages").value.split(/[\s,]+/).filter(Boolean);
}

async function requestBuild(event) {
  event.preventDefault();
  if (!chosen) return;
  const request = {
    version: chosen.version,
    target: chosen.target,
    profile: chosen.id,
    packages: packageList(),
    diff_packages: true,
    client: "asu-web/1",
  };
  const defaults = $("defaults").value.trim();
  if (defaults) request.defaults = `${defaults}\n`;
  for (const id of ["result", "failure"]) $(id).hidden = true;
  $("build").disabled = true;
  const started = Date.now();
  showProgress({ detail: "queued", queue_position: 0 }, started);
  try {
    const answer = await getJSON("/api/v1/build", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request),
    });
    await follow(answer, started);
  } catch (error) {
    clearInterval(timer);
    $("progress").hidden = true;
    showFailure({ detail: `The server cannot be reached: ${error.message}` });
  }
  $("build").disabled = false;
}

// Poll the build until it is no longer queued or building.
async function follow(answer, started) {
  clearInterval(timer);
  timer = setInterval(() => {
    $("progress-elapsed").textContent = formatSeconds((Date.now() - started) / 1000);
  }, 250);
  while (answer.status === 202) {
    showProgress(answer.body, started);
    refreshStatus();
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    answer = await getJSON(`/api/v1/build/${answer.body.request_hash}`);
  }
  clearInterval(timer);
  $("progress").hidden = true;
  if (answer.status === 200) showResult(answer.body);
  else showFailure(answer.body);
}

function showProgress(body, started) {
  if ($("progress").hidden) {
    $("progress").hidden = false;
    $("progress").scrollIntoView({ block: "nearest" });
  }
  $("progress-hash").textContent = body.request_hash || "…";
  $("progress-elapsed").textContent = formatSeconds((Date.now() - started) / 1000);
  const state = $("progress-state");
  if (body.detail === "queued") {
    state.textContent = "queued";
    const ahead = body.queue_position ?? 0;
    $("progress-detail").textContent = ahead ? `${ahead} ahead in the queue` : "next in the queue";
    $("progress-bar").style.width = "3%";
  } else {
    const stage = body.stage || body.imagebuilder_status || "init";
    state.textContent = "building";
    $("progress-detail").textContent = stage.replaceAll("_", " ");
    const step = Math.max(STAGES.indexOf(stage), 0) + 1;
    $("progress-bar").style.width = `${Math.round((100 * step) / (STAGES.length + 1))}%`;
  }
}

function showResult(result) {
  $("result").hidden = false;
  $("result").scrollIntoView({ block: "start" });
  $("result-device").textContent = (result.titles || []).map(titleText).join(", ") || result.id;
  $("result-version").textContent = `${result.version_number} ${result.version_code}`;
  $("result-built").textContent = result.build_at;
  const rows = $("result-images");
  rows.replaceChildren();
  for (const image of result.images) {
    const link = make("a", image.name, { href: `/store/${result.bin_dir}/${image.name}`, download: image.name });
    const row = make("tr");
    const name = make("td");
    name.append(link);
    row.append(name, make("td", image.type), make("td", formatBytes(image.size)), make("td", image.sha256, { class: "hash" }));
    rows.append(row);
  }
  const manifest = $("result-manifest");
  manifest.replaceChildren();
  const names = Object.keys(result.manifest).sort();
  for (const name of names) {
    const row = make("tr");
    row.append(make("td", name), make("td", result.manifest[name]));
    manifest.append(row);
  }
  $("manifest-count").textContent = names.length;
}

function titleText(title) {
  return title.title || [title.vendor, title.model, title.variant].filter(Boolean).join(" ");
}

function showFailure(body) {
  $("failure").hidden = false;
  $("failure").scrollIntoView({ block: "nearest" });
  $("failure-detail").textContent = body.detail || "unknown error";
  $("failure-output").textContent = [body.stderr, body.stdout].filter(Boolean).join("\n") || "(none)";
}

$("version").addEventListener("change", loadDevices);
$("search").addEventListener("input", showMatches);
$("build-form").addEventListener("submit", requestBuild);
loadVersions();
