// "Try it in your browser": reads the two photos (file inputs or a sample pair), checks them, and
// hands them to the worker (worker.mjs), which runs DSResNet; shows the mask over BG-FG and the
// depth map, with PNG downloads. The last result is also kept in window.dsnetLast (the network's
// inputs and outputs, the sizes and the times), which the book's browser test reads.
import {pairProblem} from "./sizes.mjs";

const $ = (id) => document.getElementById(id);
const root = $("dsnet-try"), status = $("dsnet-status"), bar = $("dsnet-progress");
const inputs = {bg: $("dsnet-bg"), bgFg: $("dsnet-bg-fg")};
const worker = new Worker(new URL("./worker.mjs", import.meta.url), {type: "module"});
const waiting = new Map();
let nextId = 0, busy = false, queued = null;

function say(text, state, progress) {
  status.textContent = text;
  root.dataset.state = state;
  bar.hidden = progress === undefined;
  if (progress === null) bar.removeAttribute("value");
  else if (progress !== undefined) bar.value = progress;
}

worker.onmessage = ({data}) => {
  if (data.type === "progress") {
    if (data.stage === "download") {
      const mb = (n) => (n / 1e6).toFixed(1);
      say(`Downloading the model: ${mb(data.done)}${data.total ? ` of ${mb(data.total)}` : ""} MB…`, "loading",
        data.total ? data.done / data.total : null);
    } else {
      say("Starting ONNX Runtime…", "loading", null);
    }
    return;
  }
  const {resolve, reject} = waiting.get(data.id);
  waiting.delete(data.id);
  if (data.type === "error") reject(new Error(data.message)); else resolve(data.result);
};

function ask(message, transfer = []) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    waiting.set(id, {resolve, reject});
    worker.postMessage({...message, id}, transfer);
  });
}

async function decode(blob, name) {
  try {
    return await createImageBitmap(blob, {imageOrientation: "from-image", premultiplyAlpha: "none",
      colorSpaceConversion: "none"});
  } catch {
    throw new Error(`“${name}” is not an image this browser can read: choose a JPEG, PNG or WebP photo.`);
  }
}

function show(canvasId, linkId, rgba, result, fileName) {
  const canvas = $(canvasId);
  canvas.width = result.width;
  canvas.height = result.height;
  canvas.getContext("2d").putImageData(new ImageData(rgba, result.width, result.height), 0, 0);
  canvas.toBlob((blob) => {
    const link = $(linkId);
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(blob);
    link.download = fileName;
  }, "image/png");
}

function describe(result) {
  const size = ([h, w]) => `${w} × ${h}`;
  const passes = result.passes.map((p, i) => `${i === 0 ? "mask" : "depth"} at ${size(p.size)}`);
  const what = result.passes.length === 1 ? `mask and depth at ${size(result.plan.mask)}` : passes.join(", ");
  return `Done: ${result.width} × ${result.height} pixels, ${what}. DSResNet ran in ` +
    `${Math.round(result.modelMs)} ms (${result.threads === 1 ? "one thread" : `${result.threads} threads`}), ` +
    `${Math.round(result.totalMs)} ms with reading and drawing.`;
}

async function predict(bgBlob, bgFgBlob, name) {
  say("Reading the photos…", "running", null);
  const [bg, bgFg] = [await decode(bgBlob.blob, bgBlob.name), await decode(bgFgBlob.blob, bgFgBlob.name)];
  const problem = pairProblem(bg, bgFg);
  if (problem) { bg.close(); bgFg.close(); throw new Error(problem); }
  if (!root.dataset.loaded) say("Downloading the model…", "loading", null);
  await ask({type: "load"});
  root.dataset.loaded = "yes";
  say("Running DSResNet…", "running", null);
  const result = await ask({type: "run", bg, bgFg}, [bg, bgFg]);
  show("dsnet-overlay", "dsnet-overlay-png", result.pictures.overlay, result, `${name}_overlay.png`);
  show("dsnet-depth", "dsnet-depth-png", result.pictures.depth, result, `${name}_depth.png`);
  show("dsnet-mask", "dsnet-mask-png", result.pictures.mask, result, `${name}_mask.png`);
  $("dsnet-results").hidden = false;
  window.dsnetLast = {name, ...result};
  say(describe(result), "done");
}

// One pair at a time; a pair chosen meanwhile waits, and only the latest one.
async function submit(bg, bgFg, name) {
  if (busy) { queued = [bg, bgFg, name]; return; }
  busy = true;
  try {
    await predict(bg, bgFg, name);
  } catch (error) {
    say(error.message, "error");
  } finally {
    busy = false;
  }
  if (queued) { const next = queued; queued = null; submit(...next); }
}

function fromInputs() {
  const [bg, bgFg] = [inputs.bg.files[0], inputs.bgFg.files[0]];
  if (!bg || !bgFg) { say(`Now choose ${bg ? "BG-FG" : "BG"} too.`, "idle"); return; }
  const name = bgFg.name.replace(/\.[^.]*$/, "") || "prediction";
  submit({blob: bg, name: bg.name}, {blob: bgFg, name: bgFg.name}, name);
}

async function fromSample(button) {
  const fetchBlob = async (url) => {
    const response = await fetch(url);
    return {blob: await response.blob(), name: url.split("/").pop()};
  };
  submit(await fetchBlob(button.dataset.bg), await fetchBlob(button.dataset.bgFg), `sample${button.dataset.sample}`);
}

inputs.bg.addEventListener("change", fromInputs);
inputs.bgFg.addEventListener("change", fromInputs);
for (const button of root.querySelectorAll("button[data-bg]")) button.addEventListener("click", () => fromSample(button));
say("Choose two photos, or click a sample pair.", "idle");
