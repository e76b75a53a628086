"""The report's stylesheet, inlined into the page (no external font or file)."""

CSS = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #d9e2ec; --good: #2f855a; --bad: #c53030; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
  margin: 0 auto; padding: 24px 32px 48px; max-width: 1280px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 6px; }
.note { color: var(--muted); font-size: 12.5px; margin: 6px 0; }
.notice { background: #fffbea; border: 1px solid #f0b429; border-left-width: 5px; padding: 8px 12px;
  margin: 8px 0; border-radius: 4px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; }
thead th { background: #f5f7fa; font-weight: 600; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.system { font-weight: 600; }
.better { color: var(--good); background: #e3f9e5; font-weight: 600; }
.worse { color: var(--bad); background: #ffe3e3; font-weight: 600; }
.charts, .pair { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.chart-box { border: 1px solid var(--line); border-radius: 6px; padding: 6px; background: #fff;
  max-width: 100%; overflow-x: auto; }
svg.chart { display: block; font-family: inherit; }
.chart-title { font-size: 13px; font-weight: 600; fill: var(--ink); }
.chart-sub, .tick { font-size: 11px; fill: var(--muted); }
.value { font-size: 11px; fill: var(--ink); }
.grid { stroke: #eef2f7; } .axis { stroke: #9aa5b1; } .whisker { stroke: #222; stroke-width: 1.3; }
table.confusion td.cell { width: 30px; height: 26px; text-align: center; padding: 2px;
  border: 1px solid #fff; font-variant-numeric: tabular-nums; }
table.confusion td.hit { background: rgba(47, 133, 90, calc(0.12 + 0.75 * var(--share, 0))); }
table.confusion td.miss { background: rgba(197, 48, 48, calc(0.9 * var(--share, 0))); }
table.confusion th { text-align: center; padding: 2px 6px; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 14px; }
figure.sample { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 10px;
  background: #fbfcfd; min-width: 0; }
figure.sample img { display: block; max-width: 100%; max-height: 320px; margin: 0 auto 8px;
  border: 1px solid var(--line); background: #fff; }
.placeholder { height: 160px; display: flex; align-items: center; justify-content: center;
  text-align: center; padding: 12px; border: 2px dashed #bcccdc; color: var(--muted);
  margin-bottom: 8px; overflow-wrap: anywhere; }
.sid { font-family: ui-monospace, monospace; font-size: 12px; margin: 0; overflow-wrap: anywhere; }
.score { font-weight: 600; margin: 2px 0 6px; }
figure dl { margin: 0; }
figure dt { font-size: 11px; color: var(--muted); text-transform: uppercase; }
figure dd { margin: 0 0 6px; }
pre { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; font: 12px/1.4 ui-monospace,
  SFMono-Regular, Menlo, Consolas, monospace; max-height: 14em; overflow-y: auto; }
del { background: #ffd8d8; color: #9b1c1c; } ins { background: #c6f6d5; color: #22543d;
  text-decoration: none; } .cut { color: var(--muted); }
.meta { font-size: 11.5px; color: var(--muted); margin: 4px 0 0; overflow-wrap: anywhere; }
.systems { display: flex; flex-wrap: wrap; gap: 16px; }
.system { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; flex: 1 1 420px; }
.system dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0; }
.system dt { color: var(--muted); } .system dd { margin: 0; overflow-wrap: anywhere; }
ul.sigs { margin: 0; padding-left: 18px; font-size: 12px; } code { overflow-wrap: anywhere; }
"""
