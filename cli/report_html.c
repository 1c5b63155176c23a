/*
 * report_html.c - the dashboard as one self-contained HTML page: KPI tiles,
 * inline SVG charts (TTFR distribution with the SLA line, daily TTFR median
 * and P95, routing by region and segment, template usage) and the tables
 * behind them. No scripts, no external resources: it opens from a mail
 * attachment or a file share.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report.h"

#define W_CHART 560
#define H_CHART 280

static const char *const palette[] = {"#2563eb", "#f59e0b", "#10b981", "#8b5cf6",
                                      "#ef4444", "#06b6d4", "#84cc16", "#ec4899"};
#define NPALETTE (sizeof palette / sizeof palette[0])

static void esc(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		default: fputc(*s, f);
		}
	}
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static double num(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

/* "12.3 min", "2.4 h", or an en dash when unknown. */
static void minutes(FILE *f, double m)
{
	if (isnan(m))
		fputs("&ndash;", f);
	else if (m >= 120)
		fprintf(f, "%.1f h", m / 60);
	else
		fprintf(f, "%.1f min", m);
}

static void percent(FILE *f, double r)
{
	if (isnan(r))
		fputs("&ndash;", f);
	else
		fprintf(f, "%.1f%%", 100 * r);
}

static void tile(FILE *f, const char *label, const char *cls, void (*fmt)(FILE *, double), double v,
                 const char *sub)
{
	fprintf(f, "<div class=\"tile %s\"><div class=\"label\">%s</div><div class=\"value\">", cls,
	        label);
	fmt(f, v);
	fprintf(f, "</div><div class=\"sub\">%s</div></div>\n", sub);
}

static void count(FILE *f, double v)
{
	if (isnan(v))
		fputs("&ndash;", f);
	else
		fprintf(f, "%.0f", v);
}

static void ratio(FILE *f, double v)
{
	if (isnan(v))
		fputs("&ndash;", f);
	else
		fprintf(f, "%.2f", v);
}

/* A "nice" axis maximum >= v: 1, 2, 2.5, 5 x 10^k. */
static double nice_max(double v)
{
	if (!(v > 0))
		return 1;
	double p = pow(10, floor(log10(v)));
	static const double steps[] = {1, 2, 2.5, 5, 10};
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
		if (steps[i] * p >= v)
			return steps[i] * p;
	return 10 * p;
}

/* Horizontal grid lines and y labels for 0..ymax over the plot box. */
static void y_grid(FILE *f, double x0, double y0, double w, double h, double ymax, const char *unit)
{
	for (int i = 0; i <= 4; i++) {
		double y = y0 + h - h * i / 4.0;
		fprintf(f,
		        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
		        "<text x=\"%.1f\" y=\"%.1f\" class=\"ytick\">%g%s</text>\n",
		        x0, y, x0 + w, y, x0 - 6, y + 4, ymax * i / 4.0, unit);
	}
}

/* TTFR distribution: one bar per bucket; buckets past the SLA in red; a
 * dashed line where the SLA falls. */
static void chart_buckets(FILE *f, json_t *ttfr, double sla)
{
	json_t *b = json_object_get(ttfr, "buckets");
	size_t n = json_array_size(b), i;
	json_t *x;
	double maxc = 0, x0 = 50, y0 = 30, w = W_CHART - 70, h = H_CHART - 80;
	json_array_foreach(b, i, x) if (num(x, "count") > maxc) maxc = num(x, "count");
	double ymax = nice_max(maxc);
	double slot = w / (double)n, bw = slot * 0.7;
	fprintf(f, "<svg viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"TTFR distribution\">\n",
	        W_CHART, H_CHART);
	y_grid(f, x0, y0, w, h, ymax, "");
	json_array_foreach(b, i, x)
	{
		double from = num(x, "from_minutes");
		double to = i + 1 < n ? num(json_array_get(b, i + 1), "from_minutes") : INFINITY;
		const char *color = to <= sla ? "#2563eb" : from >= sla ? "#ef4444" : "#f59e0b";
		double c = num(x, "count"), bh = h * c / ymax;
		double bx = x0 + slot * (double)i + (slot - bw) / 2;
		fprintf(f,
		        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" rx=\"3\" "
		        "fill=\"%s\"><title>%s min: %.0f leads</title></rect>\n",
		        bx, y0 + h - bh, bw, bh, color, str(x, "label"), c);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"barlabel\">%.0f</text>\n",
		        bx + bw / 2, y0 + h - bh - 5, c);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"xtick\">%s</text>\n", bx + bw / 2,
		        y0 + h + 18, str(x, "label"));
	}
	/* where the SLA falls: inside the bucket that holds it, proportionally */
	double sx = x0 + w;
	for (i = 0; i < n; i++) {
		double from = num(json_array_get(b, i), "from_minutes");
		double to = i + 1 < n ? num(json_array_get(b, i + 1), "from_minutes") : INFINITY;
		if (sla >= from && sla < to) {
			double frac = isinf(to) ? 0 : (sla - from) / (to - from);
			double bx = x0 + slot * (double)i + (slot - bw) / 2;
			sx = frac == 0 ? bx - (slot - bw) / 2 : bx + bw * frac;
			break;
		}
	}
	fprintf(f,
	        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"sla\"/>"
	        "<text x=\"%.1f\" y=\"%.1f\" class=\"slalabel\">SLA %g min</text>\n",
	        sx, y0 - 8, sx, y0 + h, sx + 4, y0 - 12 + 8, sla);
	fprintf(f, "<text x=\"%.1f\" y=\"%d\" class=\"axis\">minutes to first response</text>\n",
	        x0 + w / 2, H_CHART - 12);
	fprintf(f, "</svg>\n");
}

/* Daily TTFR median and P95 as two lines, with the SLA as a dashed rule. */
static void chart_daily(FILE *f, json_t *ttfr, double sla)
{
	json_t *d = json_object_get(ttfr, "daily");
	size_t n = json_array_size(d), i;
	json_t *x;
	double maxv = sla, x0 = 56, y0 = 30, w = W_CHART - 80, h = H_CHART - 90;
	json_array_foreach(d, i, x) if (num(x, "p95_minutes") > maxv) maxv = num(x, "p95_minutes");
	double ymax = nice_max(maxv * 1.05);
	fprintf(f, "<svg viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"Daily TTFR\">\n", W_CHART,
	        H_CHART);
	y_grid(f, x0, y0, w, h, ymax, "");
	double sy = y0 + h - h * sla / ymax;
	fprintf(f,
	        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"sla\"/>"
	        "<text x=\"%.1f\" y=\"%.1f\" class=\"slalabel\" text-anchor=\"end\">SLA %g "
	        "min</text>\n",
	        x0, sy, x0 + w, sy, x0 + w, sy - 5, sla);
	static const char *const keys[] = {"median_minutes", "p95_minutes"};
	static const char *const colors[] = {"#2563eb", "#f59e0b"};
	for (int k = 0; k < 2; k++) {
		fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\" points=\"",
		        colors[k]);
		json_array_foreach(d, i, x)
		{
			double px = n > 1 ? x0 + w * (double)i / (double)(n - 1) : x0 + w / 2;
			fprintf(f, "%.1f,%.1f ", px, y0 + h - h * num(x, keys[k]) / ymax);
		}
		fprintf(f, "\"/>\n");
		json_array_foreach(d, i, x)
		{
			double px = n > 1 ? x0 + w * (double)i / (double)(n - 1) : x0 + w / 2;
			fprintf(f,
			        "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"><title>%s "
			        "%s: "
			        "%.1f min</title></circle>\n",
			        px, y0 + h - h * num(x, keys[k]) / ymax, colors[k], str(x, "day"),
			        k ? "P95" : "median", num(x, keys[k]));
		}
	}
	/* at most ~8 day labels so they never overlap */
	size_t every = n > 8 ? (n + 7) / 8 : 1;
	json_array_foreach(d, i, x)
	{
		if (i % every && i + 1 != n)
			continue;
		double px = n > 1 ? x0 + w * (double)i / (double)(n - 1) : x0 + w / 2;
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"xtick\">%s</text>\n", px,
		        y0 + h + 18, str(x, "day") + 5);
	}
	fprintf(f,
	        "<rect x=\"%.1f\" y=\"%d\" width=\"12\" height=\"4\" fill=\"#2563eb\"/>"
	        "<text x=\"%.1f\" y=\"%d\" class=\"legend\">median</text>"
	        "<rect x=\"%.1f\" y=\"%d\" width=\"12\" height=\"4\" fill=\"#f59e0b\"/>"
	        "<text x=\"%.1f\" y=\"%d\" class=\"legend\">P95</text>\n",
	        x0, H_CHART - 22, x0 + 16, H_CHART - 17, x0 + 80, H_CHART - 22, x0 + 96,
	        H_CHART - 17);
	fprintf(f, "</svg>\n");
}

/* Leads routed per region, stacked by segment. */
static void chart_routing(FILE *f, json_t *routing)
{
	json_t *sr = json_object_get(routing, "by_segment_region");
	json_t *regions = json_object_get(routing, "by_region");
	json_t *segments = json_object_get(routing, "by_segment");
	size_t nr = json_array_size(regions), ns = json_array_size(segments), i, j;
	double x0 = 50, y0 = 30, w = W_CHART - 70, h = H_CHART - 90, maxc = 0;
	json_t *r, *s;
	json_array_foreach(regions, i, r) if (num(r, "leads") > maxc) maxc = num(r, "leads");
	double ymax = nice_max(maxc);
	double slot = nr ? w / (double)nr : w, bw = slot * 0.6;
	fprintf(f, "<svg viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"Routing\">\n", W_CHART,
	        H_CHART);
	y_grid(f, x0, y0, w, h, ymax, "");
	json_array_foreach(regions, i, r)
	{
		double bx = x0 + slot * (double)i + (slot - bw) / 2, top = y0 + h;
		json_array_foreach(segments, j, s)
		{
			char key[256];
			snprintf(key, sizeof key, "%s/%s", str(s, "key"), str(r, "key"));
			double c = 0;
			size_t k;
			json_t *e;
			json_array_foreach(sr, k, e) if (strcmp(str(e, "key"), key) == 0) c =
			        num(e, "leads");
			if (c <= 0)
				continue;
			double bh = h * c / ymax;
			top -= bh;
			fprintf(f,
			        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
			        "fill=\"%s\">"
			        "<title>",
			        bx, top, bw, bh, palette[j % NPALETTE]);
			esc(f, key);
			fprintf(f, ": %.0f leads</title></rect>\n", c);
		}
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"barlabel\">%.0f</text>\n",
		        bx + bw / 2, top - 5, num(r, "leads"));
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"xtick\">", bx + bw / 2,
		        y0 + h + 18);
		esc(f, str(r, "key"));
		fprintf(f, "</text>\n");
	}
	double lx = x0;
	json_array_foreach(segments, j, s)
	{
		fprintf(f,
		        "<rect x=\"%.1f\" y=\"%d\" width=\"12\" height=\"12\" rx=\"2\" "
		        "fill=\"%s\"/>"
		        "<text x=\"%.1f\" y=\"%d\" class=\"legend\">",
		        lx, H_CHART - 28, palette[j % NPALETTE], lx + 16, H_CHART - 18);
		esc(f, str(s, "key"));
		fprintf(f, " (%.0f)</text>\n", num(s, "leads"));
		lx += 30 + 9.0 * (double)(strlen(str(s, "key")) + 5);
	}
	(void)ns;
	fprintf(f, "</svg>\n");
}

/* Template usage: one row per template, suggested (light) and sent (dark). */
static void chart_templates(FILE *f, json_t *tp)
{
	json_t *by = json_object_get(tp, "by_template");
	size_t n = json_array_size(by), i;
	json_t *t;
	double maxc = 0, rowh = 34, x0 = 130, w = W_CHART - x0 - 250;
	json_array_foreach(by, i, t) if (num(t, "suggested") > maxc) maxc = num(t, "suggested");
	double xmax = nice_max(maxc);
	int hh = (int)(rowh * (double)(n ? n : 1) + 50);
	fprintf(f, "<svg viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"Template usage\">\n",
	        W_CHART, hh);
	json_array_foreach(by, i, t)
	{
		double y = 16 + rowh * (double)i;
		double sw = w * num(t, "suggested") / xmax, dw = w * num(t, "sent") / xmax;
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"rowlabel\">", x0 - 8, y + 15);
		esc(f, str(t, "template_id"));
		fprintf(f, "</text>\n");
		fprintf(f,
		        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"20\" rx=\"3\" "
		        "fill=\"#bfdbfe\"/><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
		        "height=\"20\" "
		        "rx=\"3\" fill=\"#2563eb\"/>\n",
		        x0, y, sw, x0, y, dw);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"rowvalue\">%.0f suggested, ",
		        x0 + sw + 6, y + 15, num(t, "suggested"));
		percent(f, num(t, "send_rate"));
		fprintf(f, " sent");
		if (!isnan(num(t, "reply_rate"))) {
			fprintf(f, ", ");
			percent(f, num(t, "reply_rate"));
			fprintf(f, " replied");
		}
		fprintf(f, "</text>\n");
	}
	fprintf(f,
	        "<rect x=\"%.1f\" y=\"%d\" width=\"12\" height=\"12\" fill=\"#bfdbfe\"/><text "
	        "x=\"%.1f\" y=\"%d\" class=\"legend\">suggested</text><rect x=\"%.1f\" y=\"%d\" "
	        "width=\"12\" height=\"12\" fill=\"#2563eb\"/><text x=\"%.1f\" y=\"%d\" "
	        "class=\"legend\">sent</text>\n",
	        x0, hh - 24, x0 + 16, hh - 14, x0 + 100, hh - 24, x0 + 116, hh - 14);
	fprintf(f, "</svg>\n");
}

/* A table of rows with a key column and the given numeric columns. */
static void html_table(FILE *f, const char *title, json_t *rows, const char *const *cols,
                       const char *const *heads, size_t max)
{
	size_t i, c;
	json_t *r;
	fprintf(f, "<table><caption>%s</caption><tr>", title);
	for (c = 0; heads[c]; c++)
		fprintf(f, "<th>%s</th>", heads[c]);
	fprintf(f, "</tr>\n");
	json_array_foreach(rows, i, r)
	{
		if (i == max) {
			fprintf(f,
			        "<tr><td colspan=\"%zu\" class=\"more\">&hellip; %zu more in the "
			        "CSV</td></tr>\n",
			        c, json_array_size(rows) - max);
			break;
		}
		fprintf(f, "<tr>");
		for (c = 0; cols[c]; c++) {
			json_t *v = json_object_get(r, cols[c]);
			fprintf(f, "<td%s>", json_is_string(v) ? "" : " class=\"n\"");
			const char *name = json_string_value(json_object_get(r, "name"));
			if (c == 0 && name) { /* a person reads names; the id stays as a hint */
				esc(f, name);
				fprintf(f, " <span class=\"id\">");
				esc(f, json_string_value(v));
				fprintf(f, "</span>");
			} else if (json_is_string(v))
				esc(f, json_string_value(v));
			else if (strstr(cols[c], "rate") || strcmp(cols[c], "share") == 0)
				percent(f, json_is_number(v) ? json_number_value(v) : NAN);
			else if (strstr(cols[c], "minutes"))
				minutes(f, json_is_number(v) ? json_number_value(v) : NAN);
			else if (strstr(cols[c], "confidence"))
				ratio(f, json_is_number(v) ? json_number_value(v) : NAN);
			else
				count(f, json_is_number(v) ? json_number_value(v) : NAN);
			fprintf(f, "</td>");
		}
		fprintf(f, "</tr>\n");
	}
	fprintf(f, "</table>\n");
}

static const char css[] =
        "body{font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;"
        "margin:0;background:#f1f5f9;color:#0f172a}"
        "header{background:#0f172a;color:#f8fafc;padding:18px 32px}"
        "header h1{margin:0;font-size:22px;font-weight:600}"
        "header p{margin:4px 0 0;color:#94a3b8;font-size:13px}"
        "main{padding:20px 32px;max-width:1240px}"
        "h2{font-size:16px;margin:26px 0 10px;color:#334155;text-transform:uppercase;"
        "letter-spacing:.04em}"
        ".tiles{display:flex;flex-wrap:wrap;gap:12px}"
        ".tile{background:#fff;border-radius:8px;padding:12px 16px;min-width:150px;"
        "box-shadow:0 1px 2px rgba(0,0,0,.08);border-top:4px solid #2563eb}"
        ".tile.warn{border-top-color:#ef4444}.tile.ok{border-top-color:#10b981}"
        ".tile .label{font-size:12px;color:#64748b}"
        ".tile .value{font-size:26px;font-weight:600;margin-top:2px}"
        ".tile .sub{font-size:11px;color:#94a3b8}"
        ".grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(540px,1fr));gap:16px}"
        ".card{background:#fff;border-radius:8px;padding:14px 16px;"
        "box-shadow:0 1px 2px rgba(0,0,0,.08)}"
        ".card h3{margin:0 0 6px;font-size:14px;color:#334155}"
        "svg{width:100%;height:auto;font-size:12px}"
        "svg .grid{stroke:#e2e8f0}svg .ytick{text-anchor:end;fill:#64748b;font-size:11px}"
        "svg .xtick{text-anchor:middle;fill:#334155;font-size:12px}"
        "svg .barlabel{text-anchor:middle;fill:#0f172a;font-size:12px;font-weight:600}"
        "svg .axis{text-anchor:middle;fill:#64748b;font-size:11px}"
        "svg .sla{stroke:#dc2626;stroke-width:2;stroke-dasharray:6 4}"
        "svg .slalabel{fill:#dc2626;font-size:12px;font-weight:600}"
        "svg .legend{fill:#334155;font-size:12px}"
        "svg .rowlabel{text-anchor:end;fill:#0f172a;font-size:12px}"
        "svg .rowvalue{fill:#334155;font-size:12px}"
        "table{border-collapse:collapse;background:#fff;font-size:13px;width:100%}"
        "caption{text-align:left;font-weight:600;padding:6px 0;color:#334155}"
        "th,td{padding:5px 10px;border-bottom:1px solid #e2e8f0;text-align:left}"
        "th{background:#f8fafc;color:#475569;font-weight:600}td.n{text-align:right;"
        "font-variant-numeric:tabular-nums}td.more{color:#94a3b8}"
        "footer{color:#94a3b8;font-size:11px;padding:16px 32px}"
        "span.id{color:#94a3b8;font-size:11px}";

int report_html(FILE *f, json_t *d)
{
	json_t *tt = json_object_get(d, "ttfr"), *rt = json_object_get(d, "routing"),
	       *tp = json_object_get(d, "templates"), *period = json_object_get(d, "period");
	double sla = num(json_object_get(d, "sla"), "default_minutes");
	char sub[160];
	fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	           "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
	           "<title>Lead flywheel report ");
	esc(f, str(period, "from"));
	fprintf(f, " &ndash; ");
	esc(f, str(period, "to"));
	fprintf(f, "</title><style>%s</style></head><body>\n", css);
	fprintf(f, "<header><h1>Lead flywheel report</h1><p>");
	esc(f, str(period, "from"));
	fprintf(f, " to ");
	esc(f, str(period, "to"));
	fprintf(f, " (UTC) &middot; %lld decisions &middot; generated ",
	        (long long)num(json_object_get(d, "records"), "in_period"));
	esc(f, str(d, "generated_at"));
	fprintf(f, "</p></header>\n<main>\n");

	fprintf(f, "<h2>Time to first response</h2><div class=\"tiles\">\n");
	snprintf(sub, sizeof sub, "%lld leads with a first response", (long long)num(tt, "leads"));
	tile(f, "TTFR median", "", minutes, num(tt, "median_minutes"), sub);
	tile(f, "TTFR P95", "", minutes, num(tt, "p95_minutes"), "95% of leads answered within");
	tile(f, "TTFR max", "", minutes, num(tt, "max_minutes"), "slowest first response");
	snprintf(sub, sizeof sub, "%lld leads over their SLA (default %g min)",
	         (long long)num(tt, "sla_breaches"), sla);
	tile(f, "SLA breach rate", num(tt, "sla_breach_rate") > 0.1 ? "warn" : "ok", percent,
	     num(tt, "sla_breach_rate"), sub);
	fprintf(f, "</div>\n<div class=\"grid2\" style=\"margin-top:16px\">\n");
	fprintf(f, "<div class=\"card\"><h3>TTFR distribution (leads per bucket)</h3>\n");
	chart_buckets(f, tt, sla);
	fprintf(f, "</div><div class=\"card\"><h3>Daily TTFR median and P95 (minutes, by lead "
	           "creation day)</h3>\n");
	chart_daily(f, tt, sla);
	fprintf(f, "</div></div>\n");
	static const char *const tcols[] = {"key",         "leads",       "median_minutes",
	                                    "p95_minutes", "max_minutes", "sla_breach_rate",
	                                    NULL};
	static const char *const theads[] = {"",    "Leads",      "Median", "P95",
	                                     "Max", "SLA breach", NULL};
	const char *h0[] = {"Owner", "Leads", "Median", "P95", "Max", "SLA breach", NULL};
	fprintf(f, "<div class=\"grid2\" style=\"margin-top:16px\"><div class=\"card\">");
	html_table(f, "TTFR by owner", json_object_get(tt, "by_owner"), tcols, h0, 15);
	fprintf(f, "</div><div class=\"card\">");
	const char *h1[] = {"Region", "Leads", "Median", "P95", "Max", "SLA breach", NULL};
	html_table(f, "TTFR by region", json_object_get(tt, "by_region"), tcols, h1, 15);
	(void)theads;
	fprintf(f, "</div></div>\n");

	fprintf(f, "<h2>Routing</h2><div class=\"tiles\">\n");
	json_t *lat = json_object_get(rt, "assignment_latency_minutes");
	tile(f, "Leads routed", "", count, num(rt, "leads_routed"), "owner or queue assigned");
	tile(f, "Assignment latency median", "", minutes, num(lat, "median_minutes"),
	     "lead created to owner assigned");
	tile(f, "Assignment latency P95", "", minutes, num(lat, "p95_minutes"), "");
	tile(f, "Median confidence", "", ratio, num(json_object_get(rt, "confidence"), "median"),
	     "of the routing decisions");
	fprintf(f, "</div>\n<div class=\"grid2\" style=\"margin-top:16px\"><div class=\"card\">"
	           "<h3>Leads routed by region and segment</h3>\n");
	chart_routing(f, rt);
	fprintf(f, "</div><div class=\"card\">");
	static const char *const rcols[] = {"key",
	                                    "leads",
	                                    "share",
	                                    "assignment_latency_median_minutes",
	                                    "assignment_latency_p95_minutes",
	                                    NULL};
	const char *h2[] = {"Owner", "Leads", "Share", "Latency median", "Latency P95", NULL};
	html_table(f, "Distribution by owner", json_object_get(rt, "by_owner"), rcols, h2, 12);
	fprintf(f, "</div></div>\n");

	fprintf(f, "<h2>Outreach templates</h2><div class=\"tiles\">\n");
	tile(f, "Suggested", "", count, num(tp, "suggested"), "leads with a suggestion");
	tile(f, "Send rate", "", percent, num(tp, "send_rate"), "suggestions sent");
	tile(f, "Reply rate", "", percent, num(tp, "reply_rate"),
	     isnan(num(tp, "reply_rate")) ? "no replies observed" : "leads that replied");
	tile(f, "Median confidence", "", ratio, num(tp, "median_confidence"), "of the suggestions");
	fprintf(f, "</div>\n<div class=\"grid2\" style=\"margin-top:16px\"><div class=\"card\">"
	           "<h3>Template usage</h3>\n");
	chart_templates(f, tp);
	fprintf(f, "</div><div class=\"card\">");
	static const char *const icols[] = {"key", "leads", "share", NULL};
	const char *h3[] = {"Intent", "Suggestions", "Share", NULL};
	html_table(f, "Intent distribution", json_object_get(tp, "intents"), icols, h3, 12);
	fprintf(f, "</div></div>\n</main>\n<footer>sfk report &middot; medians and P95 use linear "
	           "interpolation between closest ranks &middot; figures in dashboard_");
	esc(f, str(period, "to"));
	fprintf(f, ".json and the CSV files</footer>\n</body></html>\n");
	return ferror(f) ? -1 : 0;
}
