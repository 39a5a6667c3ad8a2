// The page's worker: loads DSResNet (the ONNX file `dsnet export --format onnx` writes) into ONNX
// Runtime Web's WebAssembly backend and runs it on a pair of images, away from the page's own
// thread. Messages in: {id, type: "load"} and {id, type: "run", bg, bgFg} (two ImageBitmaps).
// Messages out: {type: "progress", ...} while loading, then {id, type: "done" | "error", ...}.
import * as ort from "./ort/ort.wasm.min.mjs";
import {planSizes} from "./sizes.mjs";
import {resizePlane, rgbPlanes} from "./resize.mjs";

const here = new URL("./", import.meta.url);
ort.env.wasm.wasmPaths = new URL("ort/", here).href;
// Threads need a cross-origin isolated page (SharedArrayBuffer), which GitHub Pages cannot serve.
ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
ort.env.wasm.proxy = false;

let session = null, contract = null, colors = null, loading = null;

async function fetchBytes(url, report) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
  const total = Number(response.headers.get("Content-Length")) || 0;
  const reader = response.body.getReader();
  const parts = [];
  let done = 0;
  for (;;) {
    const {value, done: finished} = await reader.read();
    if (finished) break;
    parts.push(value);
    done += value.length;
    report(done, total);
  }
  const bytes = new Uint8Array(done);
  let at = 0;
  for (const part of parts) { bytes.set(part, at); at += part.length; }
  return bytes;
}

// Load once; a failed load is tried again by the next request.
function load() {
  loading = loading || loadModel().catch((error) => { loading = null; throw error; });
  return loading;
}

async function loadModel() {
  const json = async (name) => (await fetch(new URL(name, here))).json();
  [contract, colors] = await Promise.all([json("dsresnet.onnx.json"), json("magma.json")]);
  const model = await fetchBytes(new URL("dsresnet.onnx", here),
    (done, total) => postMessage({type: "progress", stage: "download", done, total}));
  postMessage({type: "progress", stage: "start"});
  session = await ort.InferenceSession.create(model, {executionProviders: ["wasm"], graphOptimizationLevel: "all"});
}

function pixels(bitmap) {
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d", {willReadFrequently: true});
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  return context.getImageData(0, 0, canvas.width, canvas.height).data;
}

// Probabilities to logits, so that the outputs are resized as dsnet.predict resizes them.
function logits(probabilities) {
  const out = new Float32Array(probabilities.length);
  for (let i = 0; i < out.length; i++) {
    const p = Math.min(Math.max(probabilities[i], 1e-7), 1 - 1e-7);
    out[i] = Math.log(p / (1 - p));
  }
  return out;
}

// A map at the network's size, back at the photo's size: resized logits through the sigmoid.
function atPhotoSize(probabilities, size, height, width) {
  const out = resizePlane(logits(probabilities), size[0], size[1], height, width);
  for (let i = 0; i < out.length; i++) out[i] = 1 / (1 + Math.exp(-out[i]));
  return out;
}

async function network(images, height, width, size) {
  const [bg, bgFg] = images.map((rgba) => rgbPlanes(rgba, height, width, size[0], size[1]));
  const shape = [1, 3, size[0], size[1]];
  const started = performance.now();
  const out = await session.run({bg: new ort.Tensor("float32", bg, shape), bg_fg: new ort.Tensor("float32", bgFg, shape)});
  const ms = performance.now() - started;
  return {size, bg, bgFg, depth: Float32Array.from(out.depth.data), mask: Float32Array.from(out.mask_prob.data), ms};
}

function pictures(bgFg, mask, depth) {
  const n = mask.length;
  const overlay = new Uint8ClampedArray(4 * n), maskImage = new Uint8ClampedArray(4 * n);
  const depthImage = new Uint8ClampedArray(4 * n);
  for (let i = 0; i < n; i++) {
    const on = mask[i] > 0.5;
    for (let c = 0; c < 3; c++) {
      const tint = [255, 0, 170][c];           // the foreground tinted magenta, half and half
      overlay[4 * i + c] = on ? (bgFg[4 * i + c] + tint) / 2 : bgFg[4 * i + c];
      maskImage[4 * i + c] = on ? 255 : 0;
    }
    const rgb = colors.rgb[Math.min(255, Math.floor(Math.min(Math.max(depth[i], 0), 1) * 256))];
    depthImage.set(rgb, 4 * i);
    overlay[4 * i + 3] = maskImage[4 * i + 3] = depthImage[4 * i + 3] = 255;
  }
  return {overlay, mask: maskImage, depth: depthImage};
}

async function run({bg, bgFg}) {
  const started = performance.now();
  const height = bg.height, width = bg.width;
  const images = [pixels(bg), pixels(bgFg)];
  const plan = planSizes(height, width, contract.train_size);
  const maskPass = await network(images, height, width, plan.mask);
  const samePass = plan.depth[0] === plan.mask[0] && plan.depth[1] === plan.mask[1];
  const depthPass = samePass ? maskPass : await network(images, height, width, plan.depth);
  // the mask probability and the depth at the photo's size, as dsnet.predict returns them
  const maps = {mask: atPhotoSize(maskPass.mask, plan.mask, height, width),
    depth: atPhotoSize(depthPass.depth, plan.depth, height, width)};
  const passes = samePass ? [maskPass] : [maskPass, depthPass];
  return {height, width, plan, passes, maps, pictures: pictures(images[1], maps.mask, maps.depth),
    threads: ort.env.wasm.numThreads, modelMs: passes.reduce((sum, pass) => sum + pass.ms, 0),
    totalMs: performance.now() - started};
}

onmessage = async ({data}) => {
  try {
    await load();
    if (data.type === "load") { postMessage({id: data.id, type: "done"}); return; }
    const result = await run(data);
    const transfer = [...Object.values(result.pictures), ...Object.values(result.maps)].map((a) => a.buffer);
    postMessage({id: data.id, type: "done", result}, transfer);
  } catch (error) {
    postMessage({id: data.id, type: "error", message: String(error && error.message || error)});
  }
};
