/** The search page `serve --db` shows at `/`: plain HTML and JS, no framework, no outside requests. */
export const SEARCH_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>convnext-clip search</title>
<style>
  :root { font-family: system-ui, sans-serif; color: #1d2330; background: #f6f7f9; }
  body { margin: 0 auto; max-width: 1100px; padding: 24px; }
  h1 { font-size: 20px; margin: 0 0 16px; }
  form { display: flex; gap: 8px; }
  input[type=search] { flex: 1; font-size: 16px; padding: 10px 12px; border: 1px solid #c5cad3; border-radius: 8px; }
  button { font-size: 16px; padding: 10px 18px; border: 0; border-radius: 8px; background: #2f6fed; color: white; cursor: pointer; }
  #drop { margin: 12px 0; padding: 18px; border: 2px dashed #aab2c0; border-radius: 10px; text-align: center; color: #5a6475; }
  #drop.over { border-color: #2f6fed; background: #eaf1ff; }
  #status { min-height: 20px; margin: 8px 0 12px; color: #5a6475; font-size: 14px; }
  #status.error { color: #b3261e; }
  #results { display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: 12px; }
  figure { margin: 0; background: white; border-radius: 10px; overflow: hidden; box-shadow: 0 1px 3px rgba(0,0,0,.12); }
  figure img { display: block; width: 100%; aspect-ratio: 1; object-fit: cover; background: #e3e6eb; }
  figcaption { padding: 6px 8px; font-size: 13px; display: flex; justify-content: space-between; gap: 6px; }
  figcaption .name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  figcaption .score { font-variant-numeric: tabular-nums; color: #2f6fed; font-weight: 600; }
</style>
</head>
<body>
<h1>Search the collection</h1>
<form id="form">
  <input id="query" type="search" placeholder="a red bicycle in the snow" autocomplete="off" aria-label="search text">
  <button type="submit">Search</button>
</form>
<div id="drop">Drop a photo here, or <label><u>choose one</u><input id="file" type="file" accept="image/*" hidden></label>, to find similar ones</div>
<div id="status" role="status"></div>
<div id="results"></div>
<script>
(() => {
  const status = document.getElementById('status');
  const results = document.getElementById('results');
  const drop = document.getElementById('drop');
  const say = (text, isError) => { status.textContent = text; status.className = isError ? 'error' : ''; };

  async function search(body, label) {
    document.body.dataset.state = 'busy';
    say('Searching for ' + label + '...');
    results.replaceChildren();
    const started = performance.now();
    try {
      const res = await fetch('/v1/search', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, top: 24 }) });
      const answer = await res.json();
      if (!res.ok) throw new Error((answer.error && answer.error.message) || res.statusText);
      for (const hit of answer.results) {
        const figure = document.createElement('figure');
        figure.className = 'hit';
        figure.dataset.path = hit.path;
        figure.dataset.score = String(hit.score);
        const img = document.createElement('img');
        img.src = hit.thumbnail;
        img.alt = hit.path;
        img.loading = 'lazy';
        const caption = document.createElement('figcaption');
        const name = document.createElement('span');
        name.className = 'name';
        name.textContent = hit.path;
        name.title = hit.path;
        const score = document.createElement('span');
        score.className = 'score';
        score.textContent = hit.score.toFixed(3);
        caption.append(name, score);
        figure.append(img, caption);
        results.append(figure);
      }
      say(answer.results.length + ' of ' + answer.count + ' photos for ' + label + ' in ' + Math.round(performance.now() - started) + ' ms');
      document.body.dataset.state = 'done';
    } catch (err) {
      say('Search failed: ' + err.message, true);
      document.body.dataset.state = 'error';
    }
  }

  function searchFile(file) {
    if (!file) return;
    document.getElementById('query').value = '';
    const reader = new FileReader();
    reader.onload = () => search({ image: reader.result }, file.name);
    reader.onerror = () => say('Could not read ' + file.name, true);
    reader.readAsDataURL(file);
  }

  document.getElementById('form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = document.getElementById('query').value.trim();
    if (text) search({ query: text }, '"' + text + '"');
  });
  document.getElementById('file').addEventListener('change', (e) => {
    searchFile(e.target.files[0]);
    e.target.value = ''; // choosing the same photo again searches again
  });
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); searchFile(e.dataTransfer.files[0]); });
})();
</script>
</body>
</html>
`;
