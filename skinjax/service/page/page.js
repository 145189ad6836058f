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
    const error = new Error(body.error || response.statusText);
    error.status = response.status;
    throw error;
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

// One explanation: a sentence of its own, in the list under the flags.
function explanation(kind, text) {
  const item = document.createElement('li');
  item.className = 'explanation';
  item.dataset.explains = kind;
  item.textContent = text;
  return item;
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
  const notes = document.createElement('ul');
  notes.className = 'explanations';
  if (row.uncertain && card) {
    const threshold = card.thresholds.uncertain_below;
    notes.append(explanation('uncertain', threshold === null
        ? 'Uncertain: no confidence level met the validation target.'
        : `Uncertain: the top probability is under ${percent(threshold)}.`));
  }
  if (row.unfamiliar) {
    notes.append(explanation('unfamiliar', 'Unfamiliar: this photo is ' +
        'unlike the photos the model was trained on; the condition may be ' +
        'none of its classes, or not skin at all.'));
  }
  if (row.skin_tone) {
    const tone = explanation('skin-tone', 'Skin tone (ITA estimate): ' +
        row.skin_tone.replaceAll('_', ' ') + '.');
    tone.dataset.skinTone = row.skin_tone;
    notes.append(tone);
  }
  if (row.quality && row.quality.flagged) {  // the service's quality gate
    notes.append(explanation('quality', `Photo quality: ${row.quality.message}` +
        '; the differential of such a photo deserves less trust.'));
  }
  if (notes.childElementCount) {
    element.append(notes);
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

// A photo's card, at the top of the results.
function newCard(file) {
  const item = document.getElementById('card-template').content
      .firstElementChild.cloneNode(true);
  item.querySelector('.name').textContent = file.name;
  item.querySelector('.thumb').src = URL.createObjectURL(file);
  document.getElementById('results').prepend(item);
  return item;
}

function offerGradCam(item, file) {
  const button = item.querySelector('.grad-cam');
  button.hidden = false;
  button.addEventListener('click', () => showGradCam(item, file, button));
  return button;
}

async function score(file) {
  const item = newCard(file);
  const state = item.querySelector('.state');
  state.textContent = 'Scoring…';
  try {
    const result = await api('/v1/predict', {method: 'POST', body: form(file)});
    state.textContent = '';
    showDifferential(item, result.photos[0]);
    item.dataset.state = 'scored';
    offerGradCam(item, file);
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

// Live mode: the camera's frames, scored one at a time. A frame is sent
// only once the previous one's answer has arrived, so requests never queue
// up: the rate is whatever the service keeps up with. The service's
// quality gate (?usable_only=true) refuses frames too blurred, dark or
// bright, or with no skin in view; the last differential scored then stays,
// marked as from an earlier frame. Counters for tests and benchmarks:
const live = window.skinjaxLive = {
  running: false, session: 0, sent: 0, answered: 0, scored: 0, refused: 0,
  failed: 0, inFlight: 0, maxInFlight: 0,
  latencies_ms: [],   // frame captured to its differential shown
  answered_at_ms: [], // performance.now() of each answer
  lastMessage: null, lastReasons: [],
};
const LIVE_MAX_SIDE = 640;   // a frame's longer side, as sent
const LIVE_MEASUREMENTS = 10000;  // the latest ones kept
let liveStream = null;
let liveLoopDone = Promise.resolve();
let framesSeen = 0;  // frames the video has presented (where the browser says)
let lastGood = null;  // {blob, row, at}: the latest frame scored

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function measure(list, value) {
  list.push(value);
  if (list.length > LIVE_MEASUREMENTS) {
    list.shift();
  }
}

// Why the camera cannot be had here, or null.
function liveUnavailable() {
  if (!window.isSecureContext) {
    return 'Live mode needs the camera, which browsers give only to pages ' +
        `on HTTPS or on localhost; this page is ${location.origin}. Open ` +
        'it over HTTPS (the service\'s serve.tls_certificate and ' +
        'serve.tls_key) or at http://localhost, or use "Take a photo".';
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return 'This browser gives pages no camera (getUserMedia); use ' +
        '"Take a photo".';
  }
  return null;
}

function liveStatus(text, error = false) {
  const status = document.getElementById('live-status');
  status.textContent = text;
  status.className = error ? 'error' : '';
}

function watchFrames(video, session) {
  if (!video.requestVideoFrameCallback) {
    return;
  }
  const onFrame = (now, metadata) => {
    framesSeen = metadata.presentedFrames;
    if (session === live.session) {
      video.requestVideoFrameCallback(onFrame);
    }
  };
  video.requestVideoFrameCallback(onFrame);
}

// Waits (1 s at most) for a frame the video has not yet given us.
async function freshFrame(video, lastSent) {
  if (!video.requestVideoFrameCallback) {
    return;
  }
  const deadline = performance.now() + 1000;
  while (framesSeen === lastSent && performance.now() < deadline) {
    await sleep(5);
  }
}

function captureFrame(video, canvas) {
  const scale = Math.min(1, LIVE_MAX_SIDE /
                         Math.max(video.videoWidth, video.videoHeight));
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext('2d').drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve, reject) => canvas.toBlob(
      (blob) => blob ? resolve(blob)
                     : reject(new Error('the frame could not be encoded')),
      'image/jpeg', 0.9));
}

function secondsAgo(at) {
  return Math.max(0, Math.round((Date.now() - at) / 1000));
}

function showLiveScored(row, blob) {
  const result = document.getElementById('live-result');
  showDifferential(result, row);
  result.dataset.state = 'scored';
  result.querySelector('.live-age').textContent = 'The current frame:';
  lastGood = {blob, row, at: Date.now()};
  document.getElementById('live-keep').disabled = false;
  liveStatus('Live: each frame is scored once the previous one\'s answer ' +
             'has arrived.');
}

// The frame was refused (quality gate) or not answered: the differential
// shown stays, marked as from an earlier frame.
function showLiveNotScored(state, message) {
  const result = document.getElementById('live-result');
  result.dataset.state = state;
  result.querySelector('.live-age').textContent = lastGood
      ? `From an earlier frame (${secondsAgo(lastGood.at)} s ago); the ` +
        `latest was not scored: ${message}.`
      : `No frame scored yet: ${message}.`;
  liveStatus(`Frame not scored: ${message}.`, state === 'failed');
}

async function liveLoop(session) {
  const video = document.getElementById('live-video');
  const canvas = document.createElement('canvas');
  let lastSent = -1;
  watchFrames(video, session);
  while (session === live.session) {
    // No frame yet, or a tab in the background (its video is not drawn):
    // nothing worth sending.
    if (video.readyState < 2 || !video.videoWidth || document.hidden) {
      await sleep(50);
      continue;
    }
    await freshFrame(video, lastSent);
    if (session !== live.session) {
      break;
    }
    lastSent = framesSeen;
    const captured = performance.now();
    let blob;
    try {
      blob = await captureFrame(video, canvas);
    } catch (e) {
      liveStatus('The camera\'s frame could not be read: ' + e.message, true);
      await sleep(500);
      continue;
    }
    const body = new FormData();
    body.append('photo', blob, 'live.jpg');
    live.sent++;
    live.inFlight++;
    live.maxInFlight = Math.max(live.maxInFlight, live.inFlight);
    let result = null;
    try {
      result = await api('/v1/predict?usable_only=true',
                         {method: 'POST', body});
    } catch (e) {
      live.failed++;
      if (session === live.session) {
        showLiveNotScored('failed', e.message);
        if (e.status === 401) {
          stopLive('Live mode stopped: the service needs its token.');
        }
      }
      await sleep(1000);  // a service restarting or overloaded
      continue;
    } finally {
      live.inFlight--;
    }
    if (session !== live.session) {
      break;  // stopped while this frame was being scored
    }
    live.answered++;
    measure(live.answered_at_ms, performance.now());
    const row = result.photos[0];
    // A service without the gate sends no 'quality': the frame passed.
    const quality = row.quality || {flagged: false, reasons: [], message: ''};
    if (quality.flagged || !row.differential || !row.differential.length) {
      live.refused++;
      live.lastMessage = quality.message || 'not scored';
      live.lastReasons = quality.reasons || [];
      showLiveNotScored('refused', live.lastMessage);
    } else {
      showLiveScored(row, blob);
      live.scored++;
      measure(live.latencies_ms, performance.now() - captured);
    }
  }
}

async function startLive() {
  const problem = liveUnavailable();
  if (problem) {
    liveStatus(problem, true);
    return;
  }
  liveStatus('Opening the camera…');
  const button = document.getElementById('live-start');
  button.disabled = true;  // one camera, however often it is clicked
  try {
    liveStream = await navigator.mediaDevices.getUserMedia({audio: false,
        video: {facingMode: {ideal: 'environment'}, width: {ideal: 1280},
                height: {ideal: 720}}});
  } catch (e) {
    liveStatus('The camera could not be opened: ' +
               (e.name === 'NotAllowedError' ? 'this page was not allowed ' +
                'to use it' : `${e.name}: ${e.message}`) + '.', true);
    return;
  } finally {
    button.disabled = false;
  }
  const video = document.getElementById('live-video');
  video.srcObject = liveStream;
  document.getElementById('live-view').hidden = false;
  document.getElementById('live-keep').hidden = false;
  button.textContent = 'Stop live';
  liveStatus('Live: waiting for the camera\'s first frame…');
  video.play().catch(() => {});  // autoplay, muted: allowed
  const session = ++live.session;
  live.running = true;
  // A loop of an earlier session ends before this one sends anything.
  liveLoopDone = liveLoopDone.then(() => liveLoop(session));
}

function stopLive(message = 'Live mode stopped.') {
  live.session++;
  live.running = false;
  if (liveStream) {
    for (const track of liveStream.getTracks()) {
      track.stop();
    }
  }
  liveStream = null;
  document.getElementById('live-video').srcObject = null;
  document.getElementById('live-start').textContent = 'Live';
  document.getElementById('live-keep').hidden = true;
  liveStatus(message);
}

// Keep: the latest frame scored becomes a card like an uploaded photo's,
// its differential as scored live, and its Grad-CAM asked for.
function keepFrame() {
  if (!lastGood) {
    liveStatus('Nothing to keep yet: no frame has been scored.', true);
    return;
  }
  const {blob, row, at} = lastGood;
  const time = new Date(at).toTimeString().slice(0, 8);
  const file = new File([blob], `live frame ${time}.jpg`,
                        {type: 'image/jpeg'});
  const item = newCard(file);
  item.dataset.source = 'live';
  showDifferential(item, row);
  item.dataset.state = 'scored';
  showGradCam(item, file, offerGradCam(item, file));
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
  document.getElementById('live-start').addEventListener('click', () => {
    if (live.running) {
      stopLive();
    } else {
      startLive();
    }
  });
  document.getElementById('live-keep').addEventListener('click', keepFrame);
  document.getElementById('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById('token').value);
    document.getElementById('token-form').hidden = true;
    loadModelCard();
  });
  loadModelCard();
}

document.addEventListener('DOMContentLoaded', setUp);
