// The sizes DSResNet is run at, as dsnet.inference.plan_sizes chooses them, and the checks a pair
// of images must pass first. Pure functions: the page and its worker both import them.

export const DIVISOR = 32;          // dsnet.shapes.DIVISOR: five halvings
export const MIN_SIZE = 64;         // dsnet.shapes.MIN_SIZE
export const MAX_SIDE = 1024;       // dsnet.inference.MAX_SIDE: the network's longer side at most
export const MAX_ASPECT = MAX_SIDE / MIN_SIZE;   // 16:1
export const MAX_INPUT_SIDE = 4096; // this page's limit on a photo's longer side (memory in a browser tab)

// Python's round(): halves go to the even neighbour, as dsnet rounds.
function roundHalfEven(x) {
  const floor = Math.floor(x);
  const rest = x - floor;
  if (rest > 0.5) return floor + 1;
  if (rest < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

function roundSize(n) {
  return Math.max(MIN_SIZE, roundHalfEven(n / DIVISOR) * DIVISOR);
}

function capped(height, width) {
  const scale = Math.min(1, MAX_SIDE / Math.max(height, width));
  return [roundSize(height * scale), roundSize(width * scale)];
}

// {mask: [H, W], depth: [H, W]}: the mask at the photo's own size (rounded to multiples of 32, at
// most MAX_SIDE a side, or at the training scale when that is larger), the depth at the training
// scale (the area of a trainSize square, aspect ratio kept).
export function planSizes(height, width, trainSize) {
  const native = capped(height, width);
  if (!trainSize) return {mask: native, depth: native};
  const scale = trainSize / Math.sqrt(height * width);
  const trained = capped(height * scale, width * scale);
  const mask = native[0] * native[1] >= trained[0] * trained[1] ? native : trained;
  return {mask, depth: trained};
}

// The one sentence that says why a pair cannot be used, or "" when it can.
export function pairProblem(bg, bgFg) {
  for (const [name, image] of [["BG", bg], ["BG-FG", bgFg]]) {
    if (Math.max(image.width, image.height) > MAX_INPUT_SIDE) {
      return `${name} is ${image.width} × ${image.height} pixels; this page takes photos up to ` +
        `${MAX_INPUT_SIDE} pixels on the longer side: scale it down first.`;
    }
  }
  if (bg.width !== bgFg.width || bg.height !== bgFg.height) {
    return `BG is ${bg.width} × ${bg.height} pixels but BG-FG is ${bgFg.width} × ${bgFg.height}: ` +
      "the two must show the same view at the same size.";
  }
  const long = Math.max(bg.width, bg.height), short = Math.min(bg.width, bg.height);
  if (long > MAX_ASPECT * short) {
    return `The photos are ${bg.width} × ${bg.height} pixels, more than ${MAX_ASPECT} times longer one way ` +
      "than the other: crop them first.";
  }
  return "";
}
