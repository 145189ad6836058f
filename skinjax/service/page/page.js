// The clinicians' page: photos in, one POST /v1/predict each (the service
// batches them together on the device), the ranked differential out.
// Plain JavaScript, served by skinjax.serve itself; it loads nothing from
// anywhere else, so it works offline.
'use strict';

const TOKEN_KEY = 'skinjax-token';
let card = null;  // GET /v1/model, once read

// A token can come in the address's fragment (#token=...), which browsers
// never send to a server or log; it is kept for this tab only. A mangled
// link (a '%' cut short) is said on the page, which asks for the token,
// rather than stopping the page's script.
function takeTokenFromAddress() {
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    history.replaceState(null, '', location.pathname + location.search);
    try {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    } catch (e) {
      document.getElementById('status').textContent =
          'The link\'s token is damaged (' + e.message + '); enter the ' +
          'token below or ask for a new link.';
      document.getElementById('token-form').hidden = false;
    }
  }
}

function headers() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? {Authorization: 'Bearer ' + token} : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, {...options, headers: headers()});
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = {error: response.status + ' ' + response.statusText};
  }
  if (response.status === 401) {
    document.getElementById('token-form').hidden = false;
  }
  if (!response.ok) {
    throw new Error(body.error || response.statusText);
  }
  return body;
}

function percent(p) {
  return (100 * p).toFixed(1) + '%';
}

async function loadModelCard() {
  const described = document.getElementById('model-card');
  try {
    card = await api('/v1/model');
  } catch (e) {
    described.textContent = 'The model could not be described: ' + e.message;
    return;
  }
  const v = card.version;
  described.textContent = `Model ${card.model} trained on ${card.dataset} ` +
      `(checkpoint step ${v.checkpoint_step}, ${v.weights} weights, ` +
      `weights ${v.params_digest}); classes: ${card.classes.join(', ')}. ` +
      `Probabilities are temperature-scaled (T = ` +
      `${card.calibration.temperature.toFixed(3)}) on ` +
      `${card.calibration.fitted_on.num_examples} ` +
      `${card.calibration.fitted_on.split} photos.`;
  const threshold = card.thresholds.uncertain_below;
  const risk = percent(card.calibration.max_risk);
  document.getElementById('uncertain-meaning').textContent =
      threshold === null
          ? `"Uncertain" is on every photo: no confidence level kept the ` +
            `model's validation errors at or under ${risk}.`
          : `"Uncertain" marks a photo whose top probability is under ` +
            `${percent(threshold)}: on validation, the photos at or above ` +
            `it were misclassified at most ${risk} of the time. An ` +
            `uncertain photo needs a clinician's closest look; a certain ` +
            `one is still not a diagnosis.`;
}

function addFlags(element, row) {
  element.replaceChildren();
  for (const [name, value] of Object.entries(row)) {
    if (value === true) {  // 'uncertain', and any flag the service adds
      const flag = document.createElement('span');
      flag.className = 'flag';
      flag.dataset.flag = name;
      flag.textContent = name;
      element.append(flag);
    }
  }
  if (row.uncertain && card) {
    const threshold = card.thresholds.uncertain_below;
    element.append(threshold === null
        ? 'no confidence level met the validation target'
        : `top probability under ${percent(threshold)}`);
  }
  if (row.unfamiliar) {
    const note = document.createElement('span');
    note.className = 'unfamiliar-meaning';
    note.textContent = ' unlike the photos the model was trained on: the ' +
        'condition may be none of its classes, or not skin at all';
    element.append(note);
  }
  if (row.skin_tone) {
    const tone = document.createElement('span');
    tone.className = 'skin-tone';
    tone.dataset.skinTone = row.skin_tone;
    tone.textContent = ` skin tone (ITA estimate): ` +
        row.skin_tone.replace('_', ' ');
    element.append(tone);
  }
}

function showDifferential(item, row) {
  const list = item.querySelector('.differential');
  list.replaceChildren();
  for (const [name, p] of row.differential) {
    const entry = document.createElement('li');
    entry.dataset.class = name;
    entry.dataset.probability = p;
    const label = document.createElement('span');
    label.className = 'label';
    label.textContent = name;
    const meter = document.createElement('meter');
    meter.min = 0;
    meter.max = 1;
    meter.value = p;
    const value = document.createElement('span');
    value.className = 'probability';
    value.textContent = percent(p);
    entry.append(label, meter, value);
    list.append(entry);
  }
  addFlags(item.querySelector('.flags'), row);
}

function form(file) {
  const body = new FormData();
  body.append('photo', file, file.name);
  return body;
}

async function showGradCam(item, file, button) {
  const overlay = item.querySelector('.overlay');
  if (!overlay.hidden) {
    overlay.hidden = true;
    button.textContent = 'Show Grad-CAM';
    return;
  }
  button.disabled = true;
  button.textContent = 'Computing Grad-CAM…';
  try {
    const result = await api('/v1/predict?grad_cam=true',
                             {method: 'POST', body: form(file)});
    overlay.src = 'data:image/png;base64,' + result.photos[0].grad_cam_png;
    overlay.hidden = false;
    button.textContent = 'Hide Grad-CAM';
  } catch (e) {
    button.textContent = 'Grad-CAM failed: ' + e.message;
  } finally {
    button.disabled = false;
  }
}

async function score(file) {
  const item = document.getElementById('card-template').content
      .firstElementChild.cloneNode(true);
  item.querySelector('.name').textContent = file.name;
  const thumb = item.querySelector('.thumb');
  thumb.src = URL.createObjectURL(file);
  const state = item.querySelector('.state');
  state.textContent = 'Scoring…';
  document.getElementById('results').prepend(item);
  try {
    const result = await api('/v1/predict', {method: 'POST', body: form(file)});
    state.textContent = '';
    showDifferential(item, result.photos[0]);
    item.dataset.state = 'scored';
    const button = item.querySelector('.grad-cam');
    button.hidden = false;
    button.addEventListener('click', () => showGradCam(item, file, button));
  } catch (e) {
    state.textContent = 'Not scored: ' + e.message;
    state.className = 'state error';
    item.dataset.state = 'failed';
  }
}

function scoreAll(files) {
  const status = document.getElementById('status');
  status.textContent = files.length === 1 ? '1 photo sent.'
                                          : `${files.length} photos sent.`;
  return Promise.all(Array.from(files, score));
}

function setUp() {
  takeTokenFromAddress();
  for (const id of ['pick', 'camera']) {
    const input = document.getElementById(id);
    input.addEventListener('change', () => {
      scoreAll(input.files).then(() => { input.value = ''; });
    });
  }
  const drop = document.getElementById('drop');
  drop.addEventListener('dragover', (event) => {
    event.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    scoreAll(event.dataTransfer.files);
  });
  document.getElementById('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById('token').value);
    document.getElementById('token-form').hidden = true;
    loadModelCard();
  });
  loadModelCard();
}

document.addEventListener('DOMContentLoaded', setUp);
