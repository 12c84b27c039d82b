// How a sequence diagram is looked at: at its own size (scale 1 at first, so no label is drawn
// smaller than its CSS font size — 11 px and up), panned by dragging or by the wheel (shift: sideways),
// zoomed with ctrl + wheel; never panned past its edges into emptiness. And labels cut to the
// drawing: a label that would run out of it ends in an ellipsis, its whole text in a <title>.
// One of the page's script parts (see app.js); drawSequence (sequence.js) uses these.

/** Space kept between the canvas's edge and the drawing when panned to an end. */
const VIEW_PAD = 8;

/**
 * d3.zoom on `svg`, its transform applied to `viewport` and horizontally to `header` (which stays
 * at the top). `size()` gives the drawing's current { width, height } (collapsing changes the
 * height); `onZoom(transform)`, if given, hears every change (a comparison's other diagram).
 * Returns { zoom, reset, show(x, y), transform() }.
 */
function sequenceView(svg, viewport, header, size, onZoom) {
  const canvasSize = () => {
    const node = svg.node();
    return { w: node.clientWidth || 800, h: node.clientHeight || 600 };
  };
  /** The transform moved the least so that the drawing covers the canvas where it can (left and top aligned when smaller). */
  const clamp = (t) => {
    const { w, h } = canvasSize();
    const { width, height } = size();
    const minX = Math.min(VIEW_PAD, w - width * t.k - VIEW_PAD);
    const minY = Math.min(0, h - height * t.k - VIEW_PAD);
    const x = Math.max(minX, Math.min(VIEW_PAD, t.x));
    const y = Math.max(minY, Math.min(0, t.y));
    return x === t.x && y === t.y ? t : d3.zoomIdentity.translate(x, y).scale(t.k);
  };
  const zoom = d3
    .zoom()
    .scaleExtent([0.1, 4])
    .constrain((t) => clamp(t))
    // The wheel pans (below); ctrl + wheel (and a pinch, which browsers send as one) zooms.
    .filter((event) => (event.type === 'wheel' ? event.ctrlKey : !event.ctrlKey && !event.button))
    .on('zoom', (event) => {
      const t = event.transform;
      viewport.attr('transform', t.toString());
      if (header) header.attr('transform', 'translate(' + t.x + ',0) scale(' + t.k + ')');
      if (onZoom) onZoom(t);
    });
  svg.call(zoom).on('dblclick.zoom', null);
  svg.on(
    'wheel.pan',
    (event) => {
      if (event.ctrlKey) return;
      const t = d3.zoomTransform(svg.node());
      const dx = event.shiftKey && !event.deltaX ? event.deltaY : event.deltaX;
      const dy = event.shiftKey && !event.deltaX ? 0 : event.deltaY;
      const next = clamp(d3.zoomIdentity.translate(t.x - dx, t.y - dy).scale(t.k));
      // At the drawing's end the wheel scrolls the page instead.
      if (next.x === t.x && next.y === t.y) return;
      event.preventDefault();
      svg.call(zoom.transform, next);
    },
    { passive: false },
  );
  const initial = () => d3.zoomIdentity.translate(VIEW_PAD, 0);
  svg.call(zoom.transform, initial());
  return {
    zoom,
    reset: () => svg.call(zoom.transform, initial()),
    transform: () => d3.zoomTransform(svg.node()),
    /**
     * Brings the drawing's span x0..x1 at height y into view: vertically to the canvas's upper
     * third; sideways only as far as needed to show the span (its left end first when it is wider
     * than the canvas), so a match or a failure does not pan the drawing sideways into emptiness.
     * x0 null: no sideways move.
     */
    show(x0, x1, y, headerHeight) {
      const t = d3.zoomTransform(svg.node());
      const { w, h } = canvasSize();
      const top = headerHeight * t.k;
      let tx = t.x;
      if (x0 !== null) {
        const margin = 24;
        if (x1 * t.k + tx > w - margin) tx = w - margin - x1 * t.k; // its right end into view
        if (x0 * t.k + tx < margin) tx = margin - x0 * t.k; // but its left end first
      }
      const ty = top + (h - top) / 3 - y * t.k;
      svg.call(zoom.transform, clamp(d3.zoomIdentity.translate(tx, ty).scale(t.k)));
    },
  };
}

/**
 * Cuts the text of `text` (a d3 selection of one <text>, already in the document, its anchor
 * `anchor` at `x`) so that it lies within [left, right] of its own coordinates: the longest prefix
 * that fits, with '…'; the whole text goes into a <title class="full-label"> beside it (the
 * tooltip). Measured with the browser's own metrics (getComputedTextLength), but only when the
 * label might not fit or `measure` asks for its width. Returns the drawn width, or null when not measured.
 */
function fitLabel(text, label, x, anchor, left, right, measure) {
  const node = text.node();
  const parent = d3.select(node.parentNode);
  text.text(label);
  parent.selectAll('title.full-label').remove();
  const room = anchor === 'start' ? right - x : anchor === 'end' ? x - left : 2 * Math.min(x - left, right - x);
  // A character is at most about 0.95 em of 11.5 px type: a shorter label needs no measuring.
  if (label.length * 11 <= room && !measure) return null;
  let width = node.getComputedTextLength();
  if (width <= room) return width;
  let n = Math.max(1, Math.floor((label.length * room) / width) - 1);
  text.text(label.slice(0, n) + '…');
  while (n > 1 && (width = node.getComputedTextLength()) > room) text.text(label.slice(0, --n) + '…');
  parent.append('title').attr('class', 'full-label').text(label);
  return width;
}
