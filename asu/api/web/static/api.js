// The API page: the OpenAPI document rendered as operations, fields and answers.
"use strict";

let documentSchemas = {};

// The schema a $ref names, and that name.
function resolve(schema) {
  if (schema && schema.$ref) {
    const name = schema.$ref.split("/").pop();
    return { name, schema: documentSchemas[name] || {} };
  }
  return { name: "", schema: schema || {} };
}

function typeOf(schema) {
  const { name, schema: resolved } = resolve(schema);
  if (name) return name;
  if (resolved.enum) return resolved.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (resolved.const !== undefined) return JSON.stringify(resolved.const);
  if (resolved.anyOf) return resolved.anyOf.map(typeOf).join(" or ");
  const type = [].concat(resolved.type || "any").join(" or ");
  if (resolved.items) return `${type} of ${typeOf(resolved.items)}`;
  if (resolved.additionalProperties && typeof resolved.additionalProperties === "object") {
    return `${type} {name: ${typeOf(resolved.additionalProperties)}}`;
  }
  return type;
}

// What else a schema says: pattern, limits, description.
function ruleOf(schema) {
  const { schema: resolved } = resolve(schema);
  const rules = [];
  const limits = [
    ["pattern", "matches"],
    ["minimum", "at least"],
    ["maximum", "at most"],
    ["maxLength", "at most (characters)"],
    ["maxItems", "at most (entries)"],
    ["maxProperties", "at most (entries)"],
  ];
  for (const [key, words] of limits) {
    if (resolved[key] !== undefined) rules.push(`${words} ${resolved[key]}`);
  }
  for (const part of resolved.anyOf || []) rules.push(...ruleOf(part));
  for (const inner of [resolved.items, resolved.propertyNames, resolved.additionalProperties]) {
    if (inner && typeof inner === "object") rules.push(...ruleOf(inner));
  }
  if (resolved.description) rules.push(resolved.description);
  return rules;
}

function fieldTable(schema) {
  const { schema: resolved } = resolve(schema);
  const table = make("table", null, { class: "fields" });
  const required = new Set(resolved.required || []);
  for (const [name, field] of Object.entries(resolved.properties || {})) {
    const row = table.insertRow();
    row.append(make("td", null), make("td", typeOf(field)), make("td", ruleOf(field).join("; ")));
    row.cells[0].append(make("code", name));
    if (required.has(name)) row.cells[0].append(make("span", " required", { class: "note" }));
  }
  return table;
}

function answers(responses) {
  const list = make("dl", null, { class: "answers" });
  for (const [code, answer] of Object.entries(responses)) {
    const schema = Object.values(answer.content || {})[0]?.schema;
    const headers = Object.keys(answer.headers || {});
    const text = [answer.description, schema ? typeOf(schema) : "", headers.join(", ")];
    list.append(make("dt", code), make("dd", text.filter(Boolean).join(" · ")));
  }
  return list;
}

function operationCard(path, method, operation) {
  const id = `${method}-${path}`.replace(/[^A-Za-z0-9]+/g, "-");
  const card = make("section", null, { class: "card operation", id });
  const title = make("h2", null);
  title.append(make("span", method.toUpperCase(), { class: "method" }), " ", make("code", path));
  card.append(title, make("p", operation.summary || "", { class: "note" }));
  const parameters = operation.parameters || [];
  if (parameters.length) {
    card.append(make("h3", "Path"));
    card.append(fieldTable({
      properties: Object.fromEntries(parameters.map((p) => [p.name, p.schema])),
      required: parameters.map((p) => p.name),
    }));
  }
  const body = operation.requestBody?.content?.["application/json"]?.schema;
  if (body) card.append(make("h3", `Body: ${typeOf(body)}`), fieldTable(body));
  card.append(make("h3", "Answers"), answers(operation.responses || {}));
  return { card, id };
}

async function showDocument() {
  const { status, body } = await getJSON("/api/v1/openapi.json");
  if (status !== 200) return;
  documentSchemas = body.components?.schemas || {};
  $("api-info").textContent = `${body.info.title} ${body.info.version}. ${body.info.description}`;
  for (const [path, item] of Object.entries(body.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      const { card, id } = operationCard(path, method, operation);
      $("api-operations").append(card);
      const link = make("a", `${method.toUpperCase()} ${path}`, { href: `#${id}` });
      $("api-index").append(link, make("br"));
    }
  }
  const schemaCard = make("section", null, { class: "card", id: "schemas" });
  schemaCard.append(make("h2", "Objects"));
  for (const [name, schema] of Object.entries(documentSchemas)) {
    if (!schema.properties) continue;
    schemaCard.append(make("h3", name, { id: `schema-${name}` }), fieldTable(schema));
  }
  $("api-operations").append(schemaCard);
}

showDocument();
