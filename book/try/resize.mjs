// Bilinear resizing, antialiased when shrinking: what dsnet.images.resize does with PyTorch
// (F.interpolate(mode="bilinear", align_corners=False, antialias=True)), one axis at a time,
// width first, with the same triangle filter widened by the shrink factor.

// For each output index: the first input index it reads, how many, and their weights.
// PyTorch computes them in float32 for float32 images; Math.fround does the same here.
function axisWeights(inSize, outSize) {
  const f = Math.fround;
  const scale = f(inSize / outSize);
  const support = scale >= 1 ? scale : 1;
  const invScale = scale >= 1 ? f(1 / scale) : 1;
  const span = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize), count = new Int32Array(outSize);
  const weights = new Float32Array(outSize * span);
  for (let i = 0; i < outSize; i++) {
    const center = f(scale * f(i + 0.5));
    const first = Math.max(Math.trunc(f(f(center - support) + 0.5)), 0);
    const n = Math.min(Math.trunc(f(f(center + support) + 0.5)), inSize) - first;
    let total = 0;
    for (let j = 0; j < n; j++) {
      const w = Math.max(0, f(1 - Math.abs(f(f(f(j + first) - center) + 0.5) * invScale)));
      weights[i * span + j] = w;
      total = f(total + w);
    }
    if (total !== 0) for (let j = 0; j < n; j++) weights[i * span + j] = f(weights[i * span + j] / total);
    start[i] = first;
    count[i] = n;
  }
  return {start, count, weights, span};
}

// Resample `rows` rows of `read(row, x)` (inWidth values each) to outWidth values per row.
function resizeRows(read, rows, inWidth, outWidth) {
  const out = new Float32Array(rows * outWidth);
  const {start, count, weights, span} = axisWeights(inWidth, outWidth);
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < outWidth; x++) {
      let sum = 0;
      for (let j = 0; j < count[x]; j++) sum += weights[x * span + j] * read(y, start[x] + j);
      out[y * outWidth + x] = sum;
    }
  }
  return out;
}

// Resample the columns of a rows x width plane to outRows rows.
function resizeColumns(plane, rows, width, outRows) {
  const out = new Float32Array(outRows * width);
  const {start, count, weights, span} = axisWeights(rows, outRows);
  for (let y = 0; y < outRows; y++) {
    const base = y * span;
    for (let j = 0; j < count[y]; j++) {
      const w = weights[base + j], from = (start[y] + j) * width;
      for (let x = 0; x < width; x++) out[y * width + x] += w * plane[from + x];
    }
  }
  return out;
}

// One plane (Float32Array, height x width) resized to outHeight x outWidth.
export function resizePlane(plane, height, width, outHeight, outWidth) {
  if (height === outHeight && width === outWidth) return Float32Array.from(plane);
  const wide = width === outWidth ? Float32Array.from(plane)
    : resizeRows((y, x) => plane[y * width + x], height, width, outWidth);
  return height === outHeight ? wide : resizeColumns(wide, height, outWidth, outHeight);
}

// RGBA bytes (ImageData.data, height x width) to float32 RGB planes (3 x outHeight x outWidth) in
// [0, 1], the layout the network takes.
export function rgbPlanes(rgba, height, width, outHeight, outWidth) {
  const out = new Float32Array(3 * outHeight * outWidth);
  for (let c = 0; c < 3; c++) {
    const read = (y, x) => rgba[(y * width + x) * 4 + c] / 255;
    let plane;
    if (width === outWidth) {
      plane = new Float32Array(height * width);
      for (let i = 0; i < height * width; i++) plane[i] = rgba[i * 4 + c] / 255;
    } else {
      plane = resizeRows(read, height, width, outWidth);
    }
    if (height !== outHeight) plane = resizeColumns(plane, height, outWidth, outHeight);
    out.set(plane, c * outHeight * outWidth);
  }
  return out;
}
