/*
 * Cameo upload page: pick, check, crop, presign, PUT with progress, wait for the scan and the
 * rendering, show the new avatar. Plain modern JavaScript, no dependencies, no build step.
 *
 * Transport: a file up to 1 MB goes in one presigned PUT. A larger one goes over tus 1.0.0
 * (SPEC section 2, /tus/) in 1 MB chunks, one XHR each (so upload progress events work): a
 * dropped connection or an offline spell costs at most the chunk in flight, since the page asks
 * the server for its offset (HEAD) and sends only the rest. The upload URL is remembered in
 * localStorage (per endpoint, user and file; the file's name only hashed) until the upload ends
 * (ready, rejected, expired), so a reload, or a Retry after the status checks failed, resumes it
 * or just follows it; Cancel terminates it (DELETE). The page runs one upload at a time, so
 * before it creates one it terminates the user's other remembered ones: left open, they would
 * hold the few partial uploads the server lets a user have.
 * `data-transport` ("tus" or "put") and `data-tus-bytes-sent` on the root tell tests which way
 * a file went and how many PATCH body bytes left the browser (a cut chunk counts what its
 * progress events reported); `data-media-id`, `data-tus-offset` (the offset the server last
 * confirmed) and `data-tus-create-count` say which upload it was and how it got there.
 *
 * Auth: the host application's `access_token` cookie (same origin; the browser sends it and
 * the Origin header the API checks), or a token handed to the page: `#token=...` in the URL
 * (read once and removed from the address bar), `data-token` on the root element, or
 * `window.CameoUpload.init({root, token, baseUrl})` when embedding.
 *
 * Analytics: the server records `avatar_uploaded` (size, mime, processing time) itself when it
 * publishes; this page reports nothing to the server, so nothing is counted twice. For the host
 * page it dispatches a `cameo-upload:done` DOM event on the root element with
 * {mediaId, avatarUrl, bytes, mime, observedMs} (observedMs: from the first byte sent to
 * "ready", as seen by the browser). Do not forward it as another `avatar_uploaded`.
 */
(() => {
  'use strict';

  // The server checks all of these again; they are defaults of SPEC section 5.
  const LIMITS = {
    maxBytes: 5242880,
    maxSide: 2048,
    types: ['image/jpeg', 'image/png', 'image/webp'],
  };
  const RETRY_DELAYS_MS = [1000, 2000, 4000];   // automatic retries after the first attempt
  const MAX_RETRY_AFTER_MS = 30000;
  const POLL_MIN_MS = 400;
  const POLL_MAX_MS = 3000;
  const POLL_GIVE_UP_MS = 10 * 60 * 1000;
  // Once the server has the file, a failing status check is no reason to stop soon: it is tried
  // again (these waits, the last one repeating) until it has failed for this long in a row.
  // Time offline is not counted: the page waits for the `online` event.
  const POLL_RETRY_MS = [1000, 2000, 4000, 8000, 15000];
  const POLL_FAILURE_BUDGET_MS = 60000;
  // A request that neither answers nor fails (a dead connection TCP has not noticed yet) would
  // hold the page for minutes; given up after this, it counts as a network failure and is retried.
  const REQUEST_TIMEOUT_MS = 20000;
  const MIN_CROP = 16;

  // Above this a file goes over tus. Smaller ones are one request anyway: resuming buys little.
  const TUS_THRESHOLD = 1048576;
  // Each PATCH body. Small enough that a cut costs little, large enough that the per-request
  // cost (auth_request, fdatasync, one UPDATE) stays small next to the bytes.
  const TUS_CHUNK = 1048576;
  const TUS_VERSION = '1.0.0';
  // Waits after consecutive failures while the browser says it is online; the next failure
  // after the last one gives up (Retry then resumes from the server's offset). Time spent
  // offline is not counted: the page waits for the `online` event as long as it takes.
  const TUS_BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];
  // While offline, look again this often even without an `online` event (it can be missed,
  // for one when a captive portal or VPN comes and goes).
  const TUS_OFFLINE_RECHECK_MS = 30000;
  // A connection that died without the system noticing (a Wi-Fi hand-over, a NAT that forgot
  // it) neither sends nor answers, and TCP takes many minutes to say so. A chunk whose bytes
  // stop moving, or whose answer does not come, for this long is given up and resumed from the
  // server's offset (an appended chunk is answered as soon as it is on disk)...
  const TUS_STALL_MS = 45000;
  // ...except the answer to the chunk that completes the upload: nginx gives its worker 120 s
  // to scan the image and render the avatar.
  const TUS_ANSWER_MS = 150000;
  const TUS_STORE_PREFIX = 'cameo-upload:tus:';
  // The server keeps a partial upload 24 h (tus.lifetime_seconds); a remembered one older than
  // that, or past its Upload-Expires, cannot be resumed. And a browser keeps only so many.
  const TUS_STORE_MAX_AGE_MS = 24 * 60 * 60 * 1000;
  const TUS_STORE_MAX_ENTRIES = 20;
  // An upload URL as the server makes them (Location: /tus/{media id}), on the endpoint's origin.
  const TUS_URL_PATH = /^\/tus\/[0-9a-f]{32}$/;

  const TYPE_NAMES = { 'image/jpeg': 'JPEG', 'image/png': 'PNG', 'image/webp': 'WebP' };
  const EXTENSION_TYPES = { jpg: 'image/jpeg', jpeg: 'image/jpeg', jpe: 'image/jpeg', png: 'image/png', webp: 'image/webp' };
  const REJECT_MESSAGES = {
    infected: 'The virus scanner flagged this file, so it was not published.',
    scan_failed: 'The virus scan could not be completed, so the picture was not published. Please try again later.',
    corrupt: 'The server could not read this image. It may be damaged.',
    bad_type: 'Only JPEG, PNG or WebP images are accepted.',
    bad_dimensions: 'The image is larger than 2048 pixels on a side.',
    pixel_bomb: 'The image has too many pixels (the limit is 4.2 megapixels).',
    too_large: 'The file is larger than 5 MB.',
    bad_crop: 'The crop square is outside the image. Choose the crop again.',
  };

  const ALREADY_ON_THE_SERVER = 'The server already has the photo and may still publish it.';

  const formatBytes = (n) => {
    if (n >= 1048576) return `${(n / 1048576).toFixed(1)} MB`;
    if (n >= 1024) return `${Math.round(n / 1024)} KB`;
    return `${n} bytes`;
  };
  /** A wait as a person reads it: "40 s", "12 min", "23 h 59 min" (a Retry-After can be a day). */
  const formatWait = (ms) => {
    const seconds = Math.ceil(ms / 1000);
    if (seconds < 60) return `${seconds} s`;
    const minutes = Math.ceil(seconds / 60);
    if (minutes < 60) return `${minutes} min`;
    const hours = Math.floor(minutes / 60);
    return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
  };
  const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);
  const sleep = (ms, signal) => new Promise((resolve, reject) => {
    if (signal.aborted) { reject(new Cancelled()); return; }
    const timer = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = () => { clearTimeout(timer); reject(new Cancelled()); };
    signal.addEventListener('abort', onAbort, { once: true });
  });

  class Cancelled extends Error {}
  /** A failure worth retrying automatically: network error or 5xx. */
  class Transient extends Error {
    constructor(message, retryAfterMs = 0) { super(message); this.retryAfterMs = retryAfterMs; }
  }
  /** A tus upload URL that no longer takes bytes for us (404, 410, another user's, another
   * length): forget it and create a new upload. */
  class TusGone extends Error {}
  /** A 4xx (or a rejected upload): show the server's message, do not retry. */
  class Refused extends Error {
    constructor(message, status, code, retryable = false) {
      super(message); this.status = status; this.code = code; this.retryable = retryable;
    }
  }

  const retryAfterMs = (value) => {
    if (!value) return 0;
    const seconds = Number(value);
    if (Number.isFinite(seconds)) return seconds * 1000;
    const date = Date.parse(value);
    return Number.isFinite(date) ? Math.max(0, date - Date.now()) : 0;
  };
  const parseJSON = (text) => { try { return JSON.parse(text); } catch { return null; } };

  /** Base64 of a string's UTF-8 bytes, as tus metadata values are (btoa takes Latin-1 only). */
  const base64Utf8 = (text) => {
    let binary = '';
    for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
    return btoa(binary);
  };

  /** A short hash (FNV-1a, 32 bits, hex) of a string: tells files apart without storing a name. */
  const shortHash = (text) => {
    let hash = 0x811c9dc5;
    for (const byte of new TextEncoder().encode(text)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
    return hash.toString(16).padStart(8, '0');
  };

  /** Whether `url` is an upload URL of the tus endpoint on `origin`. A remembered URL gets the
   * user's token, so one that anything else left in localStorage (or edited there) is not used. */
  const isTusUrl = (url, origin) => {
    try {
      const parsed = new URL(url);
      return parsed.origin === origin && TUS_URL_PATH.test(parsed.pathname) && !parsed.search && !parsed.hash;
    } catch {
      return false;
    }
  };

  /** A signal for one request: aborted when `signal` is (the user cancelled) or after `ms`.
   * `timedOut()` tells the two apart; `release()` stops the timer once the answer is read. */
  const timeLimited = (signal, ms) => {
    if (typeof AbortSignal.any === 'function' && typeof AbortSignal.timeout === 'function') {
      const timeout = AbortSignal.timeout(ms);
      return {
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        timedOut: () => timeout.aborted,
        release: () => {},
      };
    }
    // Browsers without AbortSignal.any: a controller of our own that follows the caller's.
    const controller = new AbortController();
    let expired = false;
    const timer = setTimeout(() => { expired = true; controller.abort(); }, ms);
    const follow = () => controller.abort();
    if (signal && signal.aborted) controller.abort();
    else if (signal) signal.addEventListener('abort', follow, { once: true });
    return {
      signal: controller.signal,
      timedOut: () => expired,
      release: () => { clearTimeout(timer); if (signal) signal.removeEventListener('abort', follow); },
    };
  };

  /** fetch, with REQUEST_TIMEOUT_MS for the answer and its body: resolves with the response and
   * the body's text. The user's abort (`signal`) is Cancelled, even when the answer has come;
   * no answer in time or a network failure is Transient. */
  const fetchText = async (url, init, signal) => {
    const limit = timeLimited(signal, REQUEST_TIMEOUT_MS);
    const failure = () => {
      if (signal && signal.aborted) return new Cancelled();
      return new Transient(limit.timedOut() ? 'The server did not answer in time.' : 'The network connection failed.');
    };
    try {
      let response;
      try {
        response = await fetch(url, { ...init, signal: limit.signal });
      } catch {
        throw failure();
      }
      let text = '';
      if (init.method !== 'HEAD') {
        try {
          text = await response.text();
        } catch {
          // Cut by a cancel or the time limit: say so. Otherwise the status is all there is.
          if ((signal && signal.aborted) || limit.timedOut()) throw failure();
        }
      }
      if (signal && signal.aborted) throw new Cancelled();
      return { response, text };
    } finally {
      limit.release();
    }
  };

  /** The `sub` of a JWT, unverified: only to keep one user's remembered uploads from another's. */
  const tokenSubject = (token) => {
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const claims = JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
      return typeof claims.sub === 'string' ? claims.sub : null;
    } catch {
      return null;
    }
  };

  /** localStorage, or nothing where it is disabled (private modes, storage blocked): resuming
   * after a reload is then lost, resuming within the page is not. */
  const store = {
    get(key) { try { return parseJSON(window.localStorage.getItem(key)); } catch { return null; } },
    set(key, value) { try { window.localStorage.setItem(key, JSON.stringify(value)); } catch { /* see above */ } },
    remove(key) { try { window.localStorage.removeItem(key); } catch { /* see above */ } },
    keys(prefix) { try { return Object.keys(window.localStorage).filter((key) => key.startsWith(prefix)); } catch { return []; } },
  };

  /** Resolves after `ms`, or as soon as the browser comes back online. */
  const pause = (ms, signal) => new Promise((resolve, reject) => {
    if (signal.aborted) { reject(new Cancelled()); return; }
    const cleanup = () => {
      clearTimeout(timer);
      window.removeEventListener('online', done);
      signal.removeEventListener('abort', onAbort);
    };
    const done = () => { cleanup(); resolve(); };
    const onAbort = () => { cleanup(); reject(new Cancelled()); };
    const timer = setTimeout(done, ms);
    window.addEventListener('online', done);
    signal.addEventListener('abort', onAbort, { once: true });
  });

  /** Turns an API answer into a value, a Refused or a Transient. */
  const classify = (status, body, retryAfter, what) => {
    if (status >= 200 && status < 300) return body || {};
    const error = (body && body.error) || {};
    if (status >= 500 || status === 0) {
      const message = error.message || `The server is not available (${status}).`;
      throw new Transient(message, retryAfterMs(retryAfter));
    }
    // Another body is still open on this URL (often the previous attempt's connection, which
    // nginx has not yet seen drop), too many uploads are open, or nginx's per-IP limit was hit
    // (rate_limited without the per-user `limit`, Retry-After 1): wait as told, then try again.
    // The per-user limit can last a minute, so that one is the user's to retry.
    const addressLimited = error.code === 'rate_limited' && error.limit === undefined;
    if (status === 429 && (error.code === 'too_many_connections' || addressLimited)) {
      throw new Transient(error.message || 'The server is busy.', retryAfterMs(retryAfter));
    }
    let message = error.message || `${what} failed (${status}).`;
    if (status === 401) message += ' Please sign in again.';
    if (status === 429) {
      // Up to a day for too_many_partial_uploads (until the oldest one expires).
      const wait = retryAfterMs(retryAfter);
      if (wait > 0) message += ` Try again in ${formatWait(wait)}.`;
    }
    throw new Refused(message, status, error.code, status === 429);
  };

  class Uploader {
    constructor(root, options = {}) {
      this.root = root;
      this.baseUrl = (options.baseUrl || root.dataset.baseUrl || '').replace(/\/$/, '');
      this.token = options.token || root.dataset.token || Uploader.tokenFromFragment() || null;
      this.el = {};
      for (const node of root.querySelectorAll('[data-role]')) this.el[node.dataset.role] = node;
      this.handles = root.querySelectorAll('[data-handle]');
      this.image = null;         // {source, width, height, blob, type, name, file, scaledFrom}
      this.crop = null;          // {x, y, size} in the uploaded image's oriented pixels
      this.run = null;           // the upload in flight: {controller, xhr, ...}
      this.presignCount = 0;
      this.userId = null;        // learnt from the current avatar when no token names the user
      this.tusBytesSent = 0;     // PATCH body bytes sent for the chosen file, resumed runs included
      this.tusCreateCount = 0;   // tus creations for the chosen file
      // Where uploads are created; the upload URLs it hands out are on its origin.
      this.tusEndpoint = new URL(`${this.baseUrl}/tus/`, window.location.href);
      this.cancelledRun = null;  // the run Cancel stopped last, while its status is still shown
      this.unfinishedPoll = null; // a PUT whose status checks failed: Retry only checks again
      Uploader.tusForgetStale();
      this.bind();
      this.setState('idle');
      this.loadCurrent();
    }

    static tokenFromFragment() {
      const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
      if (!match) return null;
      // Keep the token out of the address bar, history and screenshots.
      const rest = window.location.hash.replace(/(^#|&)token=[^&]+/, '$1').replace(/^#&?$/, '');
      history.replaceState(null, '', window.location.pathname + window.location.search + rest);
      return decodeURIComponent(match[1]);
    }

    // ---- plumbing -------------------------------------------------------------------------

    setState(state) {
      this.state = state;
      this.root.dataset.state = state;
    }

    status(text) { this.el.status.textContent = text; }

    error(text) { this.el.error.textContent = text; }

    async api(method, path, body, signal) {
      const headers = { Accept: 'application/json' };
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      if (this.token) headers.Authorization = `Bearer ${this.token}`;
      const { response, text } = await fetchText(this.baseUrl + path, {
        method, headers, credentials: 'same-origin', cache: 'no-store',
        body: body === undefined ? undefined : JSON.stringify(body),
      }, signal);
      return { status: response.status, body: parseJSON(text), retryAfter: response.headers.get('Retry-After') };
    }

    // ---- current avatar -------------------------------------------------------------------

    async loadCurrent() {
      let answer;
      try {
        answer = await this.api('GET', '/api/v1/profile/me/avatar');
      } catch {
        this.el['current-text'].textContent = 'Your current picture could not be loaded.';
        return;
      }
      if (answer.status === 200 && answer.body && answer.body.avatar_url) {
        if (typeof answer.body.user_id === 'string') this.userId = answer.body.user_id;
        this.showAvatar(answer.body.avatar_url);
        this.el['current-text'].textContent = 'This is your current picture.';
      } else if (answer.status === 404) {
        this.el['current-text'].textContent = 'You have no picture yet.';
      } else if (answer.status === 401 || answer.status === 403) {
        const message = (answer.body && answer.body.error && answer.body.error.message) || 'You are not signed in.';
        this.el['current-text'].textContent = `${message} Sign in to change your picture.`;
      } else {
        this.el['current-text'].textContent = 'Your current picture could not be loaded.';
      }
    }

    showAvatar(url) {
      const img = this.el['current-avatar'];
      img.src = url;
      img.hidden = false;
      this.el['no-avatar'].hidden = true;
    }

    // ---- picking --------------------------------------------------------------------------

    bind() {
      const { file, drop } = this.el;
      file.addEventListener('change', () => { if (file.files[0]) this.choose(file.files[0]); });
      const over = (e) => { e.preventDefault(); drop.classList.add('is-over'); };
      drop.addEventListener('dragenter', over);
      drop.addEventListener('dragover', over);
      drop.addEventListener('dragleave', (e) => { if (!drop.contains(e.relatedTarget)) drop.classList.remove('is-over'); });
      drop.addEventListener('drop', (e) => {
        e.preventDefault();
        drop.classList.remove('is-over');
        const dropped = e.dataTransfer && e.dataTransfer.files[0];
        if (dropped) this.choose(dropped);
      });
      // A file dropped next to the zone must not navigate away from the page.
      window.addEventListener('dragover', (e) => e.preventDefault());
      window.addEventListener('drop', (e) => e.preventDefault());

      this.el.upload.addEventListener('click', () => this.startUpload());
      this.el.retry.addEventListener('click', () => this.startUpload());
      this.el.cancel.addEventListener('click', () => this.cancel());
      this.bindCrop();
    }

    async choose(file) {
      if (this.run) this.cancel(true);
      this.error('');
      this.status('');
      this.el.retry.hidden = true;
      this.el['progress-wrap'].hidden = true;
      this.image = null;
      this.crop = null;
      this.el['crop-section'].hidden = true;
      this.el.upload.disabled = true;
      this.cancelledRun = null;
      this.unfinishedPoll = null;
      // The test hooks describe the chosen file's upload.
      this.tusBytesSent = 0;
      this.tusCreateCount = 0;
      for (const hook of ['tusBytesSent', 'tusOffset', 'tusCreateCount', 'progressMax', 'transport', 'mediaId']) {
        delete this.root.dataset[hook];
      }
      this.setState('checking');

      const type = LIMITS.types.includes(file.type) ? file.type
        : (!file.type && EXTENSION_TYPES[(file.name.split('.').pop() || '').toLowerCase()]) || null;
      if (!type) {
        this.setState('invalid');
        this.error(`“${file.name}” is not a JPEG, PNG or WebP image${file.type ? ` (it is ${file.type})` : ''}. Only JPEG, PNG and WebP are accepted.`);
        return;
      }

      let bitmap = null;
      try {
        bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
      } catch {
        bitmap = null;   // the server decides; it may still be a valid image this browser cannot read
      }
      const tooBig = () => `“${file.name}” is ${formatBytes(file.size)}. The limit is 5 MB (${LIMITS.maxBytes.toLocaleString('en')} bytes). Choose a smaller file.`;

      if (!bitmap) {
        if (file.size > LIMITS.maxBytes) { this.setState('invalid'); this.error(tooBig()); return; }
        this.image = { source: null, width: 0, height: 0, blob: file, type, name: file.name, file };
        this.el['file-info'].textContent = '';
        this.status(`“${file.name}” cannot be previewed in this browser, so it cannot be cropped. It will be uploaded as it is and checked by the server.`);
        this.setState('ready');
        this.el.upload.disabled = false;
        return;
      }

      let image = { source: bitmap, width: bitmap.width, height: bitmap.height, blob: file, type, name: file.name, file };
      if (Math.max(bitmap.width, bitmap.height) > LIMITS.maxSide) {
        this.status(`Scaling “${file.name}” down to 2048 pixels…`);
        try {
          image = { ...(await Uploader.scaleDown(bitmap, type, file.name)), file };
        } catch (err) {
          this.setState('invalid');
          this.status('');
          this.error(`“${file.name}” is ${bitmap.width} × ${bitmap.height} pixels, more than the limit of 2048 pixels per side, and could not be scaled down here${err.message ? ` (${err.message})` : ''}.`);
          return;
        }
      } else if (file.size > LIMITS.maxBytes) {
        this.setState('invalid');
        this.error(tooBig());
        return;
      }
      this.image = image;
      this.showCrop();
      this.status(`“${file.name}” is ready. Adjust the crop, then choose Upload.`);
      this.setState('ready');
      this.el.upload.disabled = false;
    }

    /** Draws an oversized photo at most 2048 px per side; the result is what gets uploaded. */
    static async scaleDown(bitmap, type, name) {
      const factor = LIMITS.maxSide / Math.max(bitmap.width, bitmap.height);
      const width = Math.max(1, Math.min(LIMITS.maxSide, Math.round(bitmap.width * factor)));
      const height = Math.max(1, Math.min(LIMITS.maxSide, Math.round(bitmap.height * factor)));
      const canvas = document.createElement('canvas');
      canvas.width = width;
      canvas.height = height;
      const context = canvas.getContext('2d');
      context.imageSmoothingEnabled = true;
      context.imageSmoothingQuality = 'high';
      context.drawImage(bitmap, 0, 0, width, height);
      const encode = (t, q) => new Promise((resolve) => canvas.toBlob(resolve, t, q));
      // Same type first; WebP (keeps alpha) if a PNG comes out too big.
      for (const [t, q] of [[type, 0.92], ['image/webp', 0.9], ['image/jpeg', 0.85]]) {
        const blob = await encode(t, q);
        if (blob && LIMITS.types.includes(blob.type) && blob.size <= LIMITS.maxBytes) {
          return { source: canvas, width, height, blob, type: blob.type, name, scaledFrom: [bitmap.width, bitmap.height] };
        }
      }
      throw new Error('the scaled image is still larger than 5 MB');
    }

    // ---- crop -----------------------------------------------------------------------------

    showCrop() {
      const { width, height, blob, scaledFrom } = this.image;
      if (this.stageUrl) URL.revokeObjectURL(this.stageUrl);
      this.stageUrl = URL.createObjectURL(blob);
      this.el['stage-image'].src = this.stageUrl;
      const side = Math.min(width, height);
      this.minCrop = Math.min(MIN_CROP, side);
      this.crop = { x: Math.floor((width - side) / 2), y: Math.floor((height - side) / 2), size: side };
      this.el.size.min = String(this.minCrop);
      this.el.size.max = String(side);
      this.el['file-info'].textContent = scaledFrom
        ? `${this.image.name}: scaled down from ${scaledFrom[0]} × ${scaledFrom[1]} to ${width} × ${height} pixels (limit 2048 per side), ${formatBytes(blob.size)}.`
        : `${this.image.name}: ${width} × ${height} pixels, ${formatBytes(blob.size)}.`;
      this.el['crop-section'].hidden = false;
      this.renderCrop();
    }

    setCrop(x, y, size) {
      const { width, height } = this.image;
      size = Math.round(clamp(size, this.minCrop, Math.min(width, height)));
      this.crop = {
        x: Math.round(clamp(x, 0, width - size)),
        y: Math.round(clamp(y, 0, height - size)),
        size,
      };
      this.renderCrop();
    }

    renderCrop() {
      const { width, height, source } = this.image;
      const { x, y, size } = this.crop;
      const box = this.el.box.style;
      box.left = `${(x / width) * 100}%`;
      box.top = `${(y / height) * 100}%`;
      box.width = `${(size / width) * 100}%`;
      box.height = `${(size / height) * 100}%`;
      this.el.size.value = String(size);
      this.el.size.setAttribute('aria-valuetext', `${size} pixels`);
      const readout = `Square of ${size} × ${size} pixels, ${x} from the left, ${y} from the top.`;
      this.el.readout.textContent = readout;
      this.root.dataset.crop = `${x},${y},${size}`;
      const canvas = this.el.preview;
      const context = canvas.getContext('2d');
      context.clearRect(0, 0, canvas.width, canvas.height);
      context.imageSmoothingQuality = 'high';
      context.drawImage(source, x, y, size, size, 0, 0, canvas.width, canvas.height);
    }

    bindCrop() {
      const box = this.el.box;
      let drag = null;
      box.addEventListener('pointerdown', (e) => {
        if (!this.image || !this.image.source || this.busy || (e.pointerType === 'mouse' && e.button !== 0)) return;
        e.preventDefault();
        box.focus({ preventScroll: true });
        box.setPointerCapture(e.pointerId);
        const rect = this.el['stage-image'].getBoundingClientRect();
        drag = {
          id: e.pointerId,
          handle: e.target.dataset.handle || null,
          startX: e.clientX,
          startY: e.clientY,
          scale: this.image.width / rect.width,   // image pixels per CSS pixel
          crop: { ...this.crop },
        };
        box.classList.add('is-dragging');
      });
      box.addEventListener('pointermove', (e) => {
        if (!drag || e.pointerId !== drag.id) return;
        const dx = (e.clientX - drag.startX) * drag.scale;
        const dy = (e.clientY - drag.startY) * drag.scale;
        const c = drag.crop;
        if (!drag.handle) { this.setCrop(c.x + dx, c.y + dy, c.size); return; }
        // Resize around the opposite corner, which stays where it is.
        const sx = drag.handle.includes('e') ? 1 : -1;
        const sy = drag.handle.includes('s') ? 1 : -1;
        const anchorX = sx > 0 ? c.x : c.x + c.size;
        const anchorY = sy > 0 ? c.y : c.y + c.size;
        const room = Math.min(sx > 0 ? this.image.width - anchorX : anchorX, sy > 0 ? this.image.height - anchorY : anchorY);
        const size = Math.round(clamp(c.size + (sx * dx + sy * dy) / 2, this.minCrop, room));
        this.setCrop(sx > 0 ? anchorX : anchorX - size, sy > 0 ? anchorY : anchorY - size, size);
      });
      const end = (e) => {
        if (!drag || e.pointerId !== drag.id) return;
        drag = null;
        box.classList.remove('is-dragging');
      };
      box.addEventListener('pointerup', end);
      box.addEventListener('pointercancel', end);

      box.addEventListener('keydown', (e) => {
        if (!this.image || !this.image.source || this.busy) return;
        const { x, y, size } = this.crop;
        const side = Math.min(this.image.width, this.image.height);
        const fine = Math.max(1, Math.round(side * 0.01));
        const step = e.shiftKey ? Math.max(1, Math.round(side * 0.1)) : fine;
        // + and - ignore Shift: on many keyboards + needs it.
        const grow = (d) => this.setCrop(x - d / 2, y - d / 2, size + d);
        switch (e.key) {
          case 'ArrowLeft': this.setCrop(x - step, y, size); break;
          case 'ArrowRight': this.setCrop(x + step, y, size); break;
          case 'ArrowUp': this.setCrop(x, y - step, size); break;
          case 'ArrowDown': this.setCrop(x, y + step, size); break;
          case '+': case '=': grow(2 * fine); break;
          case '-': case '_': grow(-2 * fine); break;
          case 'Home': this.setCrop((this.image.width - side) / 2, (this.image.height - side) / 2, side); break;
          default: return;
        }
        e.preventDefault();
      });

      this.el.size.addEventListener('input', () => {
        if (!this.crop) return;
        const { x, y, size } = this.crop;
        const next = Number(this.el.size.value);
        this.setCrop(x + (size - next) / 2, y + (size - next) / 2, next);
      });
    }

    // ---- upload ---------------------------------------------------------------------------

    setBusy(busy) {
      this.busy = busy;
      this.el.upload.disabled = busy || !this.image;
      this.el.file.disabled = busy;
      this.el.size.disabled = busy;
      this.el.cancel.hidden = !busy;
      this.root.classList.toggle('is-busy', busy);
    }

    progress(label, value) {
      this.el['progress-wrap'].hidden = false;
      this.el['progress-label'].textContent = label;
      if (value === null) this.el.progress.removeAttribute('value');   // indeterminate
      else this.el.progress.value = value;
    }

    async startUpload() {
      if (!this.image || this.busy) return;
      this.error('');
      this.el.retry.hidden = true;
      const transport = this.image.blob.size > TUS_THRESHOLD ? 'tus' : 'put';
      const run = { controller: new AbortController(), xhr: null, presigned: null, mediaId: null, polling: false, started: 0, transport, tus: null, tusFailures: 0 };
      // The server has this very photo and crop from a PUT whose status checks failed: follow it
      // rather than send it again. (tus finds its upload again by the remembered URL.)
      const unfinished = this.unfinishedPoll;
      this.unfinishedPoll = null;
      if (unfinished && unfinished.image === this.image && unfinished.crop === JSON.stringify(this.crop)) {
        Object.assign(run, { mediaId: unfinished.mediaId, started: unfinished.started, polling: true });
      }
      this.run = run;
      this.cancelledRun = null;
      this.root.dataset.transport = transport;
      this.setBusy(true);
      this.progress('Uploading', 0);
      const signal = run.controller.signal;
      try {
        for (let attempt = 0; ; attempt += 1) {
          try {
            await this.attempt(run);
            return;
          } catch (err) {
            // tus retries its own transfer (from the server's offset, for as long as the
            // browser is offline), and polling its own status checks.
            const ownRetries = run.transport === 'tus' || run.polling;
            if (err instanceof Transient && !ownRetries && attempt < RETRY_DELAYS_MS.length) {
              const delay = Math.min(MAX_RETRY_AFTER_MS, Math.max(RETRY_DELAYS_MS[attempt], err.retryAfterMs));
              this.setState('retrying');
              this.status(`${err.message} Trying again in ${Math.ceil(delay / 1000)} s (attempt ${attempt + 2} of ${RETRY_DELAYS_MS.length + 1})…`);
              await sleep(delay, signal);
              continue;
            }
            throw err;
          }
        }
      } catch (err) {
        if (err instanceof Cancelled || run !== this.run) return;
        this.setState('error');
        this.status('');
        this.el['progress-wrap'].hidden = true;
        if (err instanceof Transient && run.polling) {
          this.error(`The server has the photo, but its status could not be checked: ${err.message} Choose Retry to check again.`);
          this.el.retry.hidden = false;
          if (run.transport === 'put') {
            this.unfinishedPoll = { image: this.image, crop: JSON.stringify(this.crop), mediaId: run.mediaId, started: run.started };
          }
        } else if (err instanceof Transient) {
          this.error(`The upload did not go through: ${err.message} Choose Retry to try again.`);
          this.el.retry.hidden = false;
        } else {
          this.error(err.message);
          this.el.retry.hidden = !(err instanceof Refused && err.retryable);
        }
      } finally {
        if (run === this.run) {
          this.run = null;
          this.setBusy(false);
          if (!this.el.retry.hidden) this.el.retry.focus();
        }
      }
    }

    /** One attempt: presign if needed, PUT, then wait for the server to finish. */
    async attempt(run) {
      if (run.polling) { await this.poll(run); return; }
      if (run.transport === 'tus') {
        await this.tusUpload(run);
        await this.poll(run);
        return;
      }
      for (let fresh = 0; ; fresh += 1) {
        // A URL is kept until the server says it expired or was used: its expiry is judged when
        // an upload starts, so even a slow upload begun in time is accepted.
        if (!run.presigned) await this.presign(run);
        const putResult = await this.put(run);
        if (putResult === 'again' && fresh === 0) continue;
        if (putResult === 'again') throw new Transient('The upload link was refused twice.');
        await this.poll(run, putResult);
        return;
      }
    }

    async presign(run) {
      this.setState('presigning');
      this.status('Preparing the upload…');
      const body = { content_type: this.image.type, content_length: this.image.blob.size };
      if (this.crop) body.crop = { ...this.crop };
      this.presignCount += 1;
      this.root.dataset.presignCount = String(this.presignCount);
      const answer = await this.api('POST', '/users/me/avatar/upload', body, run.controller.signal);
      const json = classify(answer.status, answer.body, answer.retryAfter, 'Preparing the upload');
      run.presigned = { ...json, used: false };
      run.mediaId = json.media_id;
    }

    /** PUTs the file; resolves with the JSON answer, or 'again' when a new URL is needed. */
    async put(run) {
      const presigned = run.presigned;
      const triedBefore = presigned.used;
      presigned.used = true;
      this.setState('uploading');
      this.status('Uploading…');
      this.progress('Uploading', 0);
      if (!run.started) run.started = performance.now();
      const answer = await new Promise((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        run.xhr = xhr;
        xhr.open(presigned.method || 'PUT', presigned.upload_url);
        for (const [name, value] of Object.entries(presigned.headers || {})) xhr.setRequestHeader(name, value);
        xhr.upload.addEventListener('progress', (e) => {
          if (!e.lengthComputable) return;
          const percent = Math.round((e.loaded / e.total) * 100);
          this.progress(`Uploading: ${percent} % (${formatBytes(e.loaded)} of ${formatBytes(e.total)})`, percent);
          this.root.dataset.progressMax = String(Math.max(Number(this.root.dataset.progressMax || 0), percent));
        });
        xhr.addEventListener('load', () => resolve({ status: xhr.status, body: parseJSON(xhr.responseText), retryAfter: xhr.getResponseHeader('Retry-After') }));
        xhr.addEventListener('error', () => reject(new Transient('The network connection failed during the upload.')));
        xhr.addEventListener('abort', () => reject(new Cancelled()));
        xhr.send(this.image.blob);
      });
      run.xhr = null;
      const code = answer.body && answer.body.error && answer.body.error.code;
      if (code === 'url_used' || code === 'url_expired' || (answer.status === 403 && triedBefore)) {
        // The URL was used (maybe by our own earlier attempt, whose answer got lost) or has
        // expired. If the server has the file, follow it; otherwise ask for a new URL.
        if (code !== 'url_expired') {
          const state = await this.mediaState(run);
          if (state && ['received', 'scanning', 'processing', 'ready', 'rejected'].includes(state.state)) return state;
        }
        run.presigned = null;
        return 'again';
      }
      const json = classify(answer.status, answer.body, answer.retryAfter, 'The upload');
      this.progress('Uploaded', 100);
      return json;
    }

    // ---- resumable upload (tus 1.0.0) ------------------------------------------------------

    /** Whose uploads these are: a shared browser must not offer one user's upload to another. */
    tusUser() {
      return (this.token && tokenSubject(this.token)) || this.userId || 'session';
    }

    /** Where this file's upload URL is remembered: per endpoint (its origin), per user, and per
     * file as the browser sees it (size, modification time, type, and a hash of the name: the
     * name itself has no business staying in localStorage after the upload). */
    tusKey() {
      const file = this.image.file || this.image.blob;
      return TUS_STORE_PREFIX + JSON.stringify([
        this.tusEndpoint.origin, this.tusUser(), file.size, file.lastModified || 0, file.type || '', shortHash(file.name || ''),
      ]);
    }

    /** What a key names, [origin, user, size, lastModified, type, name hash], or null. */
    static tusKeyParts(key) {
      const parts = parseJSON(key.slice(TUS_STORE_PREFIX.length));
      const named = Array.isArray(parts) && parts.length === 6 && typeof parts[0] === 'string' && typeof parts[1] === 'string';
      return named ? parts : null;
    }

    /** Forgets the remembered uploads that cannot be resumed: unreadable ones (an older page's
     * among them), those whose URL is not an upload URL on their key's origin, those older than
     * an upload lives or past their Upload-Expires; and all but the newest TUS_STORE_MAX_ENTRIES. */
    static tusForgetStale() {
      const now = Date.now();
      const kept = [];
      for (const key of store.keys(TUS_STORE_PREFIX)) {
        const parts = Uploader.tusKeyParts(key);
        const saved = store.get(key);
        const createdAt = saved ? Number(saved.createdAt) : NaN;
        const usable = parts !== null && saved !== null && isTusUrl(saved.url, parts[0])
          && Number.isFinite(createdAt) && now - createdAt < TUS_STORE_MAX_AGE_MS
          && !(Date.parse(saved.expires) <= now);
        if (usable) kept.push({ key, createdAt });
        else store.remove(key);
      }
      kept.sort((a, b) => b.createdAt - a.createdAt);
      for (const { key } of kept.slice(TUS_STORE_MAX_ENTRIES)) store.remove(key);
    }

    /** The upload remembered under `key` if it may be used here; any other is forgotten. */
    tusSaved(key) {
      const saved = store.get(key);
      if (saved && isTusUrl(saved.url, this.tusEndpoint.origin)) return saved;
      store.remove(key);
      return null;
    }

    /** The run's upload ended (ready, rejected, expired): nothing left to resume or follow. */
    tusForget(run) {
      if (run.tus) store.remove(run.tus.key);
    }

    tusHeaders(extra = {}) {
      const headers = { 'Tus-Resumable': TUS_VERSION, ...extra };
      if (this.token) headers.Authorization = `Bearer ${this.token}`;
      return headers;
    }

    /** HEAD, POST or DELETE (a PATCH goes by XHR, for its progress events). */
    async tusFetch(method, url, headers, { signal, keepalive = false } = {}) {
      const { response, text } = await fetchText(url, {
        method, keepalive, credentials: 'same-origin', cache: 'no-store',
        headers: this.tusHeaders({ Accept: 'application/json', ...headers }),
      }, signal);
      return { status: response.status, body: parseJSON(text), retryAfter: response.headers.get('Retry-After'), headers: response.headers };
    }

    /**
     * Sends the file over tus, each chunk from the offset the server has, until the last byte is
     * in (then `poll` follows the upload as it does a PUT's). Transient failures are retried
     * here, from the server's offset: while the browser is offline for as long as that lasts,
     * while it is online with a backoff and then a give-up (Retry resumes later). The backoff
     * starts over whenever the server's offset moves forward.
     */
    async tusUpload(run) {
      const signal = run.controller.signal;
      let recreated = false;
      for (;;) {
        if (signal.aborted) throw new Cancelled();
        try {
          if (!run.tus) await this.tusOpen(run);
          if (run.tus.verify) await this.tusHead(run);
          if (run.tus.offset >= run.tus.length) break;
          if (await this.tusPatch(run)) break;
        } catch (err) {
          // A cancelled run says nothing more: the page shows the cancel.
          if (signal.aborted) throw new Cancelled();
          if (err instanceof TusGone && !recreated) {
            // Expired, swept or terminated elsewhere: the server has none of its bytes any
            // more, so start a new upload, once.
            recreated = true;
            if (run.tus) store.remove(run.tus.key);
            run.tus = null;
            continue;
          }
          if (err instanceof TusGone) throw new Refused('The server lost the upload twice. Please upload again.', 410, 'upload_expired');
          if (!(err instanceof Transient)) throw err;
          // The chunk in flight may or may not have arrived: ask before sending more.
          if (run.tus) run.tus.verify = true;
          if (!navigator.onLine) { await this.tusWaitOnline(run); continue; }
          if (run.tusFailures >= TUS_BACKOFF_MS.length) throw err;
          const delay = Math.min(MAX_RETRY_AFTER_MS, Math.max(TUS_BACKOFF_MS[run.tusFailures], err.retryAfterMs));
          run.tusFailures += 1;
          this.setState('retrying');
          const from = run.tus && run.tus.offset > 0 ? `Continuing from ${formatBytes(run.tus.offset)}` : 'Trying again';
          this.status(`${err.message} ${from} in ${Math.ceil(delay / 1000)} s…`);
          if (run.tus) this.tusProgress(run, run.tus.offset, 'Paused');
          await pause(delay, signal);
        }
      }
      // The last byte is in: the upload is the pipeline's now. It stays remembered until polling
      // sees it end, so that a Retry after failed status checks (or a reload) finds it complete
      // (HEAD) and follows it instead of sending the file again.
      if (!run.started) run.started = performance.now();   // resumed with nothing left to send
      run.polling = true;
      this.progress('Uploaded', 100);
    }

    /** Waits for the `online` event (or looks again now and then): asking now would only fail. */
    async waitOnline(run, text) {
      this.setState('retrying');
      this.status(text);
      await pause(TUS_OFFLINE_RECHECK_MS, run.controller.signal);
    }

    async tusWaitOnline(run) {
      if (run.tus) this.tusProgress(run, run.tus.offset, 'Paused');
      await this.waitOnline(run, run.tus
        ? `You are offline. The upload will continue from ${formatBytes(run.tus.offset)} when the connection is back.`
        : 'You are offline. The upload will start when the connection is back.');
    }

    /** Resumes the upload remembered for this file and crop (HEAD), or creates one (POST). */
    async tusOpen(run) {
      const signal = run.controller.signal;
      const key = this.tusKey();
      const { blob, type } = this.image;
      const crop = this.crop ? { ...this.crop } : null;
      const saved = this.tusSaved(key);
      if (saved) {
        const expired = Date.parse(saved.expires) <= Date.now();
        const same = saved.length === blob.size && saved.type === type && JSON.stringify(saved.crop || null) === JSON.stringify(crop);
        if (same && !expired) {
          this.tusUse(run, key, saved.url, blob.size);
          this.setState('uploading');
          this.status('Resuming the upload…');
          try {
            await this.tusHead(run);
            return;
          } catch (err) {
            if (!(err instanceof TusGone)) throw err;   // transient: run.tus stays, HEAD again
            run.tus = null;
          }
        } else if (!expired) {
          // The same file with another crop (the crop is fixed at creation) or scaled otherwise:
          // that upload would publish the wrong picture.
          this.tusTerminate({ key, url: saved.url });
        }
        store.remove(key);
      }

      this.setState('uploading');
      this.status('Preparing the upload…');
      await this.tusTerminateOthers(key);
      if (signal.aborted) throw new Cancelled();
      const metadata = [['filetype', type], ['filename', this.image.name]];
      if (crop) metadata.push(['crop', JSON.stringify(crop)]);
      this.tusCreateCount += 1;
      this.root.dataset.tusCreateCount = String(this.tusCreateCount);
      // Not aborted by Cancel: an upload the server creates is then known, and terminated below,
      // instead of holding one of the user's few partial uploads until it expires.
      const answer = await this.tusFetch('POST', this.tusEndpoint.href, {
        'Upload-Length': String(blob.size),
        'Upload-Metadata': metadata.map(([name, value]) => `${name} ${base64Utf8(value)}`).join(','),
      });
      // Relative to the URL the creation went to, so the chunks follow it to the same origin
      // (the page's CSP allows only its own, and the cookie goes only there).
      const location = answer.status >= 200 && answer.status < 300 ? answer.headers.get('Location') : null;
      let url = null;
      try { url = location ? new URL(location, this.tusEndpoint).href : null; } catch { /* unusable, as none */ }
      const usable = url !== null && isTusUrl(url, this.tusEndpoint.origin);
      if (signal.aborted) {
        if (usable) this.tusDelete(url);
        throw new Cancelled();
      }
      classify(answer.status, answer.body, answer.retryAfter, 'Preparing the upload');
      // Without a usable Location there is nowhere to send the file, and creating again would
      // only leave more unfinished uploads behind (the server counts them): a refusal.
      if (!usable) {
        throw new Refused('The server did not say where to send the file, so the upload cannot go on. Please try again later.', answer.status, 'no_location');
      }
      this.tusUse(run, key, url, blob.size);
      run.tus.verify = false;
      this.tusMoved(run, 0);
      store.set(key, { url, length: blob.size, type, crop, expires: answer.headers.get('Upload-Expires'), createdAt: Date.now() });
    }

    tusUse(run, key, url, length) {
      run.tus = { key, url, length, offset: 0, verify: true, completing: false };
      run.mediaId = decodeURIComponent(new URL(url).pathname.split('/').pop());
      this.root.dataset.mediaId = run.mediaId;
    }

    /** HEAD: the offset the server has, the only one worth continuing from. */
    async tusHead(run) {
      const answer = await this.tusFetch('HEAD', run.tus.url, {}, { signal: run.controller.signal });
      // 403: another user's (a remembered URL in a shared browser); 404, 410: gone.
      if ([403, 404, 410].includes(answer.status)) throw new TusGone();
      // No body says which limit it was (nginx's per-IP one, most likely): wait as told.
      if (answer.status === 429) throw new Transient('The server is busy.', retryAfterMs(answer.retryAfter));
      classify(answer.status, {}, answer.retryAfter, 'Checking the upload');
      const offset = Number(answer.headers.get('Upload-Offset') ?? NaN);
      const length = Number(answer.headers.get('Upload-Length') ?? NaN);
      if (length !== run.tus.length) throw new TusGone();
      if (!Number.isInteger(offset) || offset < 0 || offset > length) throw new Transient('The server reported an unusable offset.');
      run.tus.verify = false;
      this.tusMoved(run, offset);
    }

    /** The server confirmed `offset` bytes (after a PATCH, a HEAD or a 409). */
    tusMoved(run, offset) {
      // Progress: the failures before it say nothing about the next chunk.
      if (offset > run.tus.offset) run.tusFailures = 0;
      // Short of the length: the completing chunk, if it was sent, did not arrive.
      if (offset < run.tus.length) run.tus.completing = false;
      run.tus.offset = offset;
      this.root.dataset.tusOffset = String(offset);
      this.tusProgress(run, offset);
    }

    /** Progress is what the server has plus what of the chunk in flight the browser has sent:
     * after a cut it goes back to what the server has, never further. */
    tusProgress(run, bytes, label = 'Uploading') {
      const { length } = run.tus;
      const shown = clamp(bytes, 0, length);
      const percent = Math.floor((shown / length) * 100);
      this.progress(`${label}: ${percent} % (${formatBytes(shown)} of ${formatBytes(length)})`, percent);
      this.root.dataset.progressMax = String(Math.max(Number(this.root.dataset.progressMax || 0), percent));
    }

    /** PATCHes one chunk at the server's offset; resolves true once the last byte is in. */
    async tusPatch(run) {
      const start = run.tus.offset;
      const chunk = this.image.blob.slice(start, Math.min(start + TUS_CHUNK, run.tus.length));
      const answer = await this.tusSendChunk(run, start, chunk);
      if (run.controller.signal.aborted) throw new Cancelled();
      return this.tusApplyAnswer(run, start, answer);
    }

    /** Sends one chunk in one XHR (so upload progress events work) and resolves with the
     * answer. A chunk cut by the browser going offline, one whose bytes stop moving, and the
     * completing one when its answer does not come are given up (Transient): the caller then
     * asks the server's offset and continues from there. */
    tusSendChunk(run, start, chunk) {
      const { tus } = run;
      const signal = run.controller.signal;
      if (signal.aborted) return Promise.reject(new Cancelled());
      // The chunk that completes the upload is answered once the server has scanned the image
      // and rendered the avatar (nginx gives that 120 s); any other once it is on disk.
      const completes = start + chunk.size === tus.length;
      if (completes) tus.completing = true;
      this.setState('uploading');
      // Once, not per chunk: the status is a live region, read out on each change.
      if (this.el.status.textContent !== 'Uploading…') this.status('Uploading…');
      if (!run.started) run.started = performance.now();
      let sent = 0;   // of this chunk, counted in tusBytesSent
      const count = (bytes) => {
        const more = Math.max(0, Math.min(bytes, chunk.size) - sent);
        sent += more;
        this.tusBytesSent += more;
        this.root.dataset.tusBytesSent = String(this.tusBytesSent);
      };
      return new Promise((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        run.xhr = xhr;
        let lost = null;   // why the page aborted it, when it did
        let moved = performance.now();
        let bodySent = false;
        // A connection the system reports gone will not deliver the rest of the chunk; waiting
        // for TCP to notice could hold the upload for minutes.
        const onOffline = () => { lost = 'The browser went offline during the upload.'; xhr.abort(); };
        const onCancel = () => xhr.abort();
        const watchdog = setInterval(() => {
          const limit = bodySent && completes ? TUS_ANSWER_MS : TUS_STALL_MS;
          if (performance.now() - moved > limit) {
            lost = bodySent ? 'The server did not answer.' : 'The connection stalled during the upload.';
            xhr.abort();
          }
        }, 1000);
        window.addEventListener('offline', onOffline);
        signal.addEventListener('abort', onCancel);
        let settled = false;
        const settle = (outcome) => () => {
          if (settled) return;
          settled = true;
          window.removeEventListener('offline', onOffline);
          signal.removeEventListener('abort', onCancel);
          clearInterval(watchdog);
          if (run.xhr === xhr) run.xhr = null;
          outcome();
        };
        xhr.upload.addEventListener('progress', (e) => {
          moved = performance.now();
          count(e.loaded);
          this.tusProgress(run, start + sent);
        });
        xhr.upload.addEventListener('load', () => {
          moved = performance.now();
          bodySent = true;
          if (completes) {
            // All bytes are out; what remains is the server's scan and rendering.
            this.setState('processing');
            this.status('Processing…');
            this.progress('Processing…', null);
          }
        });
        xhr.addEventListener('load', settle(() => {
          if (xhr.status >= 200 && xhr.status < 300) count(chunk.size);   // all of it went, whatever the progress events said
          resolve({
            status: xhr.status,
            body: parseJSON(xhr.responseText),
            retryAfter: xhr.getResponseHeader('Retry-After'),
            offset: xhr.getResponseHeader('Upload-Offset'),
            mediaState: xhr.getResponseHeader('Cameo-Media-State'),
          });
        }));
        xhr.addEventListener('error', settle(() => reject(new Transient('The connection was lost during the upload.'))));
        xhr.addEventListener('abort', settle(() => reject(lost ? new Transient(lost) : new Cancelled())));
        try {
          xhr.open('PATCH', tus.url);
          const headers = this.tusHeaders({ 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': String(start) });
          for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
          xhr.send(chunk);
        } catch (err) {
          // Nothing went; the watchdog and the listeners must not outlive the attempt.
          settle(() => reject(new Transient(`The upload could not be sent (${err.message}).`)))();
        }
      });
    }

    /** Acts on the answer to the chunk sent at `start`: true once the last byte is in. */
    tusApplyAnswer(run, start, answer) {
      const { tus } = run;
      if (answer.status >= 200 && answer.status < 300) {
        const offset = answer.offset === null ? NaN : Number(answer.offset);
        if (!Number.isInteger(offset) || offset <= start || offset > tus.length) {
          throw new Transient('The server answered without a usable offset.');
        }
        this.tusMoved(run, offset);
        return offset === tus.length || answer.mediaState !== null;
      }
      const error = (answer.body && answer.body.error) || {};
      if (answer.status === 409 && error.code === 'offset_mismatch') {
        // The server has more than we thought (an answer got lost) or less (a chunk it never
        // kept): continue from its offset, which the error names; HEAD if it does not.
        const offset = error.offset;
        if (Number.isInteger(offset) && offset >= 0 && offset <= tus.length && offset !== start) {
          this.tusMoved(run, offset);
          return false;
        }
        throw new Transient('The upload was out of step with the server.');
      }
      if (answer.status === 404 || answer.status === 410) throw new TusGone();
      // Busy or rate limited: the bytes are safe on the server, so wait as told and go on.
      if (answer.status === 429) throw new Transient(error.message || 'The server is busy.', retryAfterMs(answer.retryAfter));
      if (answer.mediaState === 'rejected' || [413, 415, 422].includes(answer.status)) {
        // The file itself was refused, for good: resuming it cannot help. The server's words,
        // as for a refused PUT, or the page's for the reason (as polling gives them).
        store.remove(tus.key);
        const reason = error.code || 'unknown reason';
        throw new Refused(error.message || REJECT_MESSAGES[error.code] || `The upload was rejected (${reason}).`, answer.status, error.code);
      }
      classify(answer.status, answer.body, answer.retryAfter, 'The upload');
      throw new Transient(`The upload got an unexpected answer (${answer.status}).`);
    }

    /** Termination of an upload this page gives up: forgotten at once, then DELETE (see
     * tusDelete for what the promise says). */
    tusTerminate(tus) {
      store.remove(tus.key);
      return this.tusDelete(tus.url);
    }

    /** DELETE; resolves with what became of the upload: 'gone' (terminated, or gone already),
     * 'decided' (complete, so the pipeline's: 409 already_decided) or 'unknown' (no answer; the
     * sweeper removes it once it expires). keepalive, so it is still sent when the page closes. */
    async tusDelete(url) {
      let answer;
      try {
        answer = await this.tusFetch('DELETE', url, {}, { keepalive: true });
      } catch {
        return 'unknown';
      }
      if ([204, 404, 410].includes(answer.status)) return 'gone';
      const code = answer.body && answer.body.error && answer.body.error.code;
      return answer.status === 409 && code === 'already_decided' ? 'decided' : 'unknown';
    }

    /** Before a creation: terminates the user's other remembered uploads on this endpoint. The
     * page runs one upload at a time, and left open they would hold the few partial uploads a
     * user may have (3; the fourth creation is refused for a day). One that got no answer stays
     * remembered, to be tried again next time. */
    async tusTerminateOthers(key) {
      const [origin, user] = Uploader.tusKeyParts(key);
      const others = store.keys(TUS_STORE_PREFIX).filter((other) => {
        const parts = other !== key ? Uploader.tusKeyParts(other) : null;
        return parts !== null && parts[0] === origin && parts[1] === user;
      });
      await Promise.all(others.map(async (other) => {
        const saved = this.tusSaved(other);
        if (saved && (await this.tusDelete(saved.url)) === 'unknown') return;
        store.remove(other);
      }));
    }

    async mediaState(run) {
      const answer = await this.api('GET', `/media/${encodeURIComponent(run.mediaId)}`, undefined, run.controller.signal);
      return classify(answer.status, answer.body, answer.retryAfter, 'Checking the upload');
    }

    /** Follows the upload until it is ready or rejected. The server has the file by now, so a
     * status check that fails is tried again: for as long as the browser is offline, and then
     * until the checks have failed for POLL_FAILURE_BUDGET_MS in a row (Retry checks again). */
    async poll(run, first = null) {
      run.polling = true;
      const signal = run.controller.signal;
      const since = performance.now();
      let info = first;
      let delay = POLL_MIN_MS;
      let waitFirst = first !== null;   // with no answer yet, ask at once
      let failures = 0;
      let failingSince = 0;
      for (;;) {
        if (info) {
          if (info.state === 'ready' && info.avatar_url) { this.tusForget(run); this.finish(run, info); return; }
          if (info.state === 'rejected') {
            this.tusForget(run);
            throw new Refused(REJECT_MESSAGES[info.reject_reason] || `The upload was rejected (${info.reject_reason || 'unknown reason'}).`, 422, info.reject_reason);
          }
          if (info.state === 'expired') {
            this.tusForget(run);
            throw new Refused('The upload link expired before the file arrived. Please upload again.', 410, 'expired');
          }
          const scanning = info.state === 'received' || info.state === 'scanning';
          this.setState(scanning ? 'scanning' : 'processing');
          this.status(scanning ? 'Scanning…' : 'Processing…');
          this.progress(scanning ? 'Scanning…' : 'Processing…', null);
        }
        if (performance.now() - since > POLL_GIVE_UP_MS) {
          throw new Refused('The server is still checking the picture. It will appear here once it is ready; reload the page later.', 0, 'slow');
        }
        if (waitFirst) {
          await sleep(delay, signal);
          delay = Math.min(POLL_MAX_MS, delay * 1.5);
        }
        waitFirst = true;
        try {
          info = await this.mediaState(run);
          failures = 0;
        } catch (err) {
          if (!(err instanceof Transient)) throw err;
          info = null;
          if (!navigator.onLine) {
            failures = 0;   // time offline is not counted
            await this.waitOnline(run, 'You are offline. The server has the photo; the page will check on it when the connection is back.');
            waitFirst = false;
            continue;
          }
          if (failures === 0) failingSince = performance.now();
          else if (performance.now() - failingSince > POLL_FAILURE_BUDGET_MS) throw err;
          const wait = Math.min(MAX_RETRY_AFTER_MS, Math.max(POLL_RETRY_MS[Math.min(failures, POLL_RETRY_MS.length - 1)], err.retryAfterMs));
          failures += 1;
          this.setState('retrying');
          this.status(`${err.message} The server has the photo; checking on it again in ${Math.ceil(wait / 1000)} s…`);
          await pause(wait, signal);   // or as soon as the browser is back online
          waitFirst = false;
        }
      }
    }

    finish(run, info) {
      const observedMs = Math.round(performance.now() - run.started);
      this.setState('done');
      this.progress('Done', 100);
      this.showAvatar(info.avatar_url);
      this.el['current-text'].textContent = 'This is your new picture.';
      this.status('Your new picture is live.');
      this.root.dataset.avatarUrl = info.avatar_url;
      this.root.dispatchEvent(new CustomEvent('cameo-upload:done', {
        bubbles: true,
        detail: { mediaId: run.mediaId, avatarUrl: info.avatar_url, bytes: this.image.blob.size, mime: this.image.type, observedMs },
      }));
    }

    cancel(silent = false) {
      const run = this.run;
      if (!run) return;
      this.run = null;
      run.controller.abort();
      if (run.xhr) run.xhr.abort();
      // The bytes the server has of an unfinished tus upload go too; once complete, the upload
      // is the pipeline's (a DELETE would get 409), as a PUT's is.
      const terminated = run.tus && !run.polling ? this.tusTerminate(run.tus) : null;
      this.setBusy(false);
      this.el['progress-wrap'].hidden = true;
      this.setState('cancelled');
      if (silent) return;
      this.el.upload.focus();
      if (run.polling) {
        this.status(`Stopped waiting. ${ALREADY_ON_THE_SERVER}`);
        return;
      }
      // The completing chunk may have arrived whole before the cut: then the photo is on its way
      // to being published, and only the DELETE's answer (409 already_decided) says so.
      const lastChunk = terminated !== null && run.tus.completing;
      this.status(lastChunk ? 'Cancelling…' : 'Upload cancelled.');
      if (!terminated) return;
      this.cancelledRun = run;
      terminated.then((outcome) => {
        if (this.cancelledRun !== run || this.run) return;   // another file or upload since
        const text = outcome === 'decided' ? `Stopped waiting. ${ALREADY_ON_THE_SERVER}` : 'Upload cancelled.';
        if (this.el.status.textContent !== text) this.status(text);
      });
    }
  }

  const instances = [];
  const init = (options = {}) => {
    const root = typeof options.root === 'string' ? document.querySelector(options.root) : options.root;
    if (!root) throw new Error('CameoUpload.init: no root element');
    if (root.cameoUploader) return root.cameoUploader;
    const uploader = new Uploader(root, options);
    root.cameoUploader = uploader;
    instances.push(uploader);
    return uploader;
  };

  window.CameoUpload = { init, instances, limits: LIMITS };
  const autostart = () => {
    for (const root of document.querySelectorAll('[data-cameo-upload]')) init({ root });
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', autostart);
  else autostart();
})();
