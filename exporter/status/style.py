"""The status page's stylesheet, inlined in the page: dark on light, states in words on
tinted badges, tabular figures for values."""

from exporter.status.sparkline import THRESHOLD_COLOUR

STYLE = f"""
body{{font:14px/1.45 system-ui,"DejaVu Sans",sans-serif;color:#111827;background:#fff;
margin:0 auto;padding:16px 24px;max-width:1180px}}
h1{{font-size:22px;margin:0 0 4px}} h2{{font-size:17px;margin:22px 0 6px}}
a{{color:#1d4ed8}} p{{margin:4px 0}} .muted{{color:#4b5563}} small{{color:#4b5563}}
ul.links{{list-style:none;padding:0;margin:4px 0;display:flex;flex-wrap:wrap;gap:2px 22px}}
.verdict{{display:flex;gap:16px;align-items:center;margin:12px 0;padding:10px 14px;
border:1px solid #d1d5db;border-radius:6px;background:#f9fafb}}
.verdict .state{{font-size:20px;padding:4px 14px}}
table{{border-collapse:collapse;width:100%}}
th,td{{text-align:left;padding:4px 8px;border-bottom:1px solid #e5e7eb;vertical-align:middle}}
thead th{{font-size:12px;color:#374151;border-bottom:2px solid #9ca3af}}
tbody th{{font-weight:normal}}
tr.check th{{background:#f3f4f6;font-weight:600;padding-top:8px}}
tr.check .about{{font-weight:normal;color:#4b5563}}
tr.breach{{background:#fff7ed}} tr.down{{background:#fef2f2}}
td.num{{font-variant-numeric:tabular-nums;white-space:nowrap}}
.state{{display:inline-block;min-width:86px;text-align:center;font-weight:700;
border-radius:4px;padding:1px 6px;border:1px solid}}
.UP{{background:#dcfce7;color:#14532d;border-color:#16a34a}}
.DEGRADED{{background:#fef3c7;color:#78350f;border-color:#d97706}}
.DOWN{{background:#fee2e2;color:#7f1d1d;border-color:#dc2626}}
.UNKNOWN{{background:#f1f5f9;color:#334155;border-color:#94a3b8}}
.ok{{color:#14532d}} .failed{{color:#991b1b;font-weight:600}}
svg.spark{{display:block}}
.key{{display:inline-block;width:18px;height:0;border-top:2px dashed {THRESHOLD_COLOUR};
vertical-align:middle}}
"""
