// faceshot landmark editor: the browser half of faceshot/ui/editor.py.
// Runs as gr.HTML's js_on_load with `element`, `trigger`, `props` and `watch` in scope.
// The component's value is a JSON string (see EditorState in editor.py). Points are kept in
// image pixels: the SVG's viewBox is the image's own size, so the browser scales the drawing
// for display and a pointer position maps back to image pixels through the SVG's matrix.
// Python does everything but the dragging and the clicking (template, mirror, undo, files).
const NS = "http://www.w3.org/2000/svg";
const host = element.querySelector(".fs-editor");
const status = element.querySelector(".fs-status");
let state = null;
let svg = null;
let circles = [];
let lines = [];
let dragging = -1;
let grab = [0, 0]; // pointer-to-point offset: a point does not jump to the pointer

function parse(value) {
  if (!value) return null;
  try { return JSON.parse(value); } catch (e) { return null; }
}

function send(next) {
  // the value goes back to Python only on a finished edit (pointer up, third click)
  state = next;
  props.value = JSON.stringify(next);
  trigger("input");
}

function pointer(evt) {
  const pt = svg.createSVGPoint();
  pt.x = evt.clientX;
  pt.y = evt.clientY;
  const p = pt.matrixTransform(svg.getScreenCTM().inverse());
  return [p.x, p.y];
}

let view = [0, 0, 1, 1]; // the drawing's box: the image, and points beyond its border

function viewBox() {
  // a point may lie outside the picture (a face cut by the frame): show it, so it can be
  // dragged, with a margin around the image; the page never moves a point beyond the margin
  const pad = 0.04 * Math.max(state.width, state.height);
  let [x0, y0, x1, y1] = [-pad, -pad, state.width + pad, state.height + pad];
  for (const [x, y] of state.points || []) {
    x0 = Math.min(x0, x - pad); y0 = Math.min(y0, y - pad);
    x1 = Math.max(x1, x + pad); y1 = Math.max(y1, y + pad);
  }
  return [x0, y0, x1 - x0, y1 - y0];
}

function inside([x, y]) {
  const [x0, y0, w, h] = view;
  return [Math.min(Math.max(x, x0), x0 + w), Math.min(Math.max(y, y0), y0 + h)];
}

function toImage(evt) { return inside(pointer(evt)); }

function dragged(evt) {
  const [x, y] = pointer(evt);
  return inside([x + grab[0], y + grab[1]]);
}

function radius() {
  // about 5 screen pixels whatever the image's size and the display's scale
  const shown = svg.getBoundingClientRect().width || view[2];
  return 5 * view[2] / shown;
}

function place(i) {
  const [x, y] = state.points[i];
  circles[i].setAttribute("cx", x);
  circles[i].setAttribute("cy", y);
}

function placeLines() {
  lines.forEach((line, k) => {
    const [a, b] = state.segments[k];
    line.setAttribute("x1", state.points[a][0]);
    line.setAttribute("y1", state.points[a][1]);
    line.setAttribute("x2", state.points[b][0]);
    line.setAttribute("y2", state.points[b][1]);
  });
}

function say(text) { status.textContent = text; }

function hint() {
  if (!state) return "Upload a character image to start.";
  if (state.mode === "anchors") {
    const next = state.anchor_names[state.anchors.length];
    return `Click the ${next} (${state.anchors.length + 1} of 3).`;
  }
  if (!state.points) return "No landmarks yet: detect, match, import, or place the template.";
  return "Drag a point to move it; hover for its name.";
}

function draw() {
  state = parse(props.value);
  host.replaceChildren();
  circles = [];
  lines = [];
  if (!state || !state.image) { say(hint()); return; }
  svg = document.createElementNS(NS, "svg");
  view = viewBox();
  svg.setAttribute("viewBox", view.join(" "));
  svg.setAttribute("class", "fs-canvas");
  svg.dataset.width = state.width;
  svg.dataset.height = state.height;
  const img = document.createElementNS(NS, "image");
  img.setAttribute("href", state.image);
  img.setAttribute("width", state.width);
  img.setAttribute("height", state.height);
  svg.appendChild(img);
  host.appendChild(svg);
  const r = radius();
  if (state.points) {
    for (const _ of state.segments) {
      const line = document.createElementNS(NS, "line");
      line.setAttribute("class", "fs-line");
      svg.appendChild(line);
      lines.push(line);
    }
    placeLines();
    state.points.forEach((_, i) => {
      const c = document.createElementNS(NS, "circle");
      c.setAttribute("r", r);
      c.setAttribute("class", `fs-point fs-${state.parts[i]}`);
      c.dataset.index = i;
      const title = document.createElementNS(NS, "title");
      title.textContent = state.labels[i];
      c.appendChild(title);
      c.addEventListener("pointerdown", (evt) => {
        if (state.mode === "anchors") return;
        evt.preventDefault();
        evt.stopPropagation();
        dragging = i;
        const [px, py] = pointer(evt);
        grab = [state.points[i][0] - px, state.points[i][1] - py];
        c.setPointerCapture(evt.pointerId);
        c.classList.add("fs-active");
      });
      c.addEventListener("pointerenter", () => say(state.labels[i]));
      c.addEventListener("pointerleave", () => { if (dragging < 0) say(hint()); });
      svg.appendChild(c);
      circles.push(c);
      place(i);
    });
  }
  (state.anchors || []).forEach(([x, y]) => {
    const m = document.createElementNS(NS, "circle");
    m.setAttribute("class", "fs-anchor");
    m.setAttribute("r", 2 * r);
    m.setAttribute("cx", x);
    m.setAttribute("cy", y);
    svg.appendChild(m);
  });
  svg.addEventListener("pointermove", (evt) => {
    if (dragging < 0) return;
    state.points[dragging] = dragged(evt);
    place(dragging);
    placeLines();
    say(`${state.labels[dragging]}: x ${state.points[dragging][0].toFixed(1)}, y ${state.points[dragging][1].toFixed(1)}`);
  });
  const finish = (evt) => {
    if (dragging < 0) return;
    state.points[dragging] = dragged(evt);
    circles[dragging].classList.remove("fs-active");
    dragging = -1;
    send(state);
  };
  svg.addEventListener("pointerup", finish);
  svg.addEventListener("pointercancel", finish);
  svg.addEventListener("click", (evt) => {
    if (state.mode !== "anchors") return;
    const anchors = (state.anchors || []).concat([toImage(evt)]);
    send({ ...state, anchors });
    draw();
  });
  say(hint());
}

window.addEventListener("resize", () => { if (state && svg) circles.forEach((c) => c.setAttribute("r", radius())); });
watch("value", draw);
draw();
