// Shared by every page: small helpers and the status line.
"use strict";

const $ = (id) => document.getElementById(id);

async function getJSON(url, options) {
  const response = await fetch(url, options);
  let body = {};
  try {
    body = await response.json();
  } catch (error) {
    body = { detail: `${response.status} ${response.statusText}` };
  }
  return { status: response.status, body };
}

function formatBytes(size) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return `${size.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

function formatSeconds(seconds) {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function formatAgo(iso) {
  if (!iso) return "never run";
  const seconds = (Date.now() - Date.parse(iso)) / 1000;
  return `${formatSeconds(Math.max(seconds, 0))} ago`;
}

// Create an element with text content (never HTML) and optional attributes.
function make(tag, text, attributes) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  for (const [name, value] of Object.entries(attributes || {})) {
    node.setAttribute(name, value);
  }
  return node;
}

async function refreshStatus() {
  try {
    const { status, body } = await getJSON("/api/v1/status");
    if (status !== 200) throw new Error(body.detail);
    $("status-queue").textContent = `${body.queue_length} waiting`;
    $("status-workers").textContent = `${body.workers_busy} of ${body.workers} busy`;
    $("status-janitor").textContent = formatAgo(body.janitor_last_run);
    $("status").classList.remove("down");
  } catch (error) {
    $("status-queue").textContent = "unavailable";
    $("status").classList.add("down");
  }
}

refreshStatus();
setInterval(refreshStatus, 10000);
