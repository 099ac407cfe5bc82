"""The page `jaxseq-serve` answers at /: type a sentence, see its translation and where the
decoder looked. One self-contained HTML document (no external scripts or styles); it
calls POST /translate with attention on and draws the weights as a table, source tokens
across and output tokens down, each cell shaded by its weight (and carrying it in
`data-weight`, which the browser test reads)."""

HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>jaxseq translator</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
  textarea { width: 100%; font-size: 1.1em; }
  #translation { font-size: 1.4em; margin: 0.8em 0; min-height: 1.4em; }
  #error { color: #b00020; }
  table.heatmap { border-collapse: collapse; margin-top: 1em; }
  table.heatmap th { font-weight: normal; padding: 2px 6px; font-size: 0.9em; }
  table.heatmap thead th { writing-mode: vertical-rl; transform: rotate(180deg); }
  table.heatmap td { width: 2.2em; height: 2.2em; border: 1px solid #eee; }
  #nbest li { margin: 0.2em 0; }
  .score { color: #777; font-size: 0.85em; }
</style>
</head>
<body>
<h1>jaxseq translator</h1>
<form id="form">
  <textarea id="text" rows="3" placeholder="A sentence to translate"></textarea>
  <label>n-best <input id="nbest" type="number" min="1" value="1" style="width: 4em"></label>
  <button id="submit" type="submit">Translate</button>
</form>
<div id="error" role="alert"></div>
<div id="translation" aria-live="polite"></div>
<ol id="nbest"></ol>
<div id="heatmap-box"></div>
<script>
const form = document.getElementById("form");
function cell(tag, text) {
  const el = document.createElement(tag);
  el.textContent = text;
  return el;
}
function heatmap(result) {
  // Rows: output tokens; columns: source tokens; shade = attention weight.
  const table = document.createElement("table");
  table.id = "heatmap";
  table.className = "heatmap";
  const head = table.createTHead().insertRow();
  head.appendChild(cell("th", ""));
  for (const token of result.source_tokens) head.appendChild(cell("th", token));
  const body = table.createTBody();
  result.attention.forEach((weights, i) => {
    const row = body.insertRow();
    row.appendChild(cell("th", result.output_tokens[i]));
    weights.forEach((w) => {
      const td = row.insertCell();
      td.dataset.weight = w.toFixed(4);
      td.title = w.toFixed(3);
      td.style.background = `rgba(20, 80, 200, ${w})`;
    });
  });
  return table;
}
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("error");
  const nbest = Math.max(1, parseInt(document.getElementById("nbest").value || "1", 10));
  error.textContent = "";
  document.body.dataset.state = "waiting";
  try {
    const response = await fetch("/translate", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({text: document.getElementById("text").value, attention: true,
                            nbest: nbest}),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error);
    const result = answer.translations[0];
    document.getElementById("translation").textContent = result.translation;
    const list = document.getElementById("nbest");
    list.replaceChildren(...(result.nbest || []).map((h) => {
      const li = cell("li", h.translation + " ");
      li.appendChild(cell("span", h.score.toFixed(3))).className = "score";
      return li;
    }));
    document.getElementById("heatmap-box").replaceChildren(heatmap(result));
    document.body.dataset.state = "done";
  } catch (e) {
    error.textContent = e.message;
    document.body.dataset.state = "error";
  }
});
</script>
</body>
</html>
"""
