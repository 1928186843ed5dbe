"""The status page at `/`: `page` renders the cached verdicts, history and probe runs as
HTML, `sparkline` draws each component's recent history as inline SVG, `units` writes the
numbers, `style` is the stylesheet."""
