#!/usr/bin/env python3
# Generates helm/salesforce-kpis/dashboards/*.json (unique panel ids, one layout). Edit here, re-run, commit both.
import json, sys
import os
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "helm", "salesforce-kpis", "dashboards") + "/"
DS = {"type": "prometheus", "uid": "${datasource}"}

def dash(uid, title, desc, rows):
    panels = []; pid = 1; y = 0
    for row_title, items in rows:
        panels.append({"id": pid, "type": "row", "title": row_title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid += 1; y += 1; x = 0
        for it in items:
            w = it.get("w", 8); h = it.get("h", 8)
            if x + w > 24: x = 0; y += h
            p = {"id": pid, "type": it.get("type", "timeseries"), "title": it["title"],
                 "description": it.get("desc", ""), "datasource": DS,
                 "gridPos": {"h": h, "w": w, "x": x, "y": y},
                 "targets": [{"refId": chr(65 + i), "datasource": DS, "expr": e[0], "legendFormat": e[1]}
                             for i, e in enumerate(it["targets"])],
                 "fieldConfig": {"defaults": {"unit": it.get("unit", "short")}, "overrides": []},
                 "options": {}}
            if "thresholds" in it:
                p["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": it["thresholds"]}
            if it.get("type") in ("stat", "gauge"):
                p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
            if "min" in it: p["fieldConfig"]["defaults"]["min"] = it["min"]
            if "max" in it: p["fieldConfig"]["defaults"]["max"] = it["max"]
            panels.append(p); pid += 1; x += w
        y += 8
    d = {"uid": uid, "title": title, "description": desc, "tags": ["salesforce-kpis"],
         "editable": True, "schemaVersion": 39, "version": 1, "timezone": "browser",
         "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
         "graphTooltip": 1, "annotations": {"list": []}, "links": [],
         "templating": {"list": [
             {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source",
              "current": {}, "hide": 0, "refresh": 1, "options": []},
             {"name": "namespace", "type": "query", "datasource": DS, "label": "Namespace",
              "query": {"query": "label_values(sfk_build_info, namespace)", "refId": "ns"},
              "definition": "label_values(sfk_build_info, namespace)",
              "refresh": 2, "includeAll": True, "allValue": ".*", "multi": False, "current": {}, "hide": 0, "options": [], "sort": 1}]},
         "panels": panels}
    with open(OUT + uid + ".json", "w") as f:
        json.dump(d, f, indent=2); f.write("\n")

NS = 'namespace=~"$namespace"'
R = "$__rate_interval"
GOOD = [{"color": "green", "value": None}]
def thr(*pairs): return [{"color": "green", "value": None}] + [{"color": c, "value": v} for v, c in pairs]

dash("sfk-pipeline", "Salesforce KPIs / Pipeline health",
     "CDC intake by the bridge: events, lag, checkpoint age, CometD recoveries, dead letters, fan-out.", [
    ("CDC intake", [
        {"title": "CDC events/s by object", "w": 12, "unit": "ops",
         "targets": [(f'sum by (object) (rate(sfk_cdc_events_total{{{NS}}}[{R}]))', "{{object}}")]},
        {"title": "CDC events/s by change type", "w": 12, "unit": "ops",
         "targets": [(f'sum by (change_type) (rate(sfk_cdc_events_total{{{NS}}}[{R}]))', "{{change_type}}")]},
        {"title": "CDC lag (commit -> Kafka) by object", "w": 12, "unit": "s",
         "targets": [(f'max by (object) (sfk_cdc_lag_seconds{{{NS}}})', "{{object}}")]},
        {"title": "Checkpoint age by channel", "w": 12, "unit": "s", "thresholds": [{"color": "green", "value": None}, {"color": "orange", "value": 129600}, {"color": "red", "value": 158400}],
         "desc": "CDC events are retained 72 h: past that the bridge cannot resume without a gap.",
         "targets": [(f'time() - max by (channel) (sfk_bridge_checkpoint_timestamp_seconds{{{NS}}})', "{{channel}}")]},
    ]),
    ("CometD session", [
        {"title": "Reconnects by reason", "unit": "ops",
         "targets": [(f'sum by (reason) (rate(sfk_cometd_reconnects_total{{{NS}}}[{R}]))', "{{reason}}")]},
        {"title": "Handshakes by outcome", "unit": "ops",
         "targets": [(f'sum by (outcome) (rate(sfk_cometd_handshakes_total{{{NS}}}[{R}]))', "{{outcome}}")]},
        {"title": "Watchdog stalls (15 min)", "type": "stat",
         "targets": [(f'sum(increase(sfk_cometd_stalls_total{{{NS}}}[15m]))', "stalls")]},
        {"title": "Batches by transaction outcome", "unit": "ops",
         "targets": [(f'sum by (outcome) (rate(sfk_bridge_batches_total{{{NS}}}[{R}]))', "{{outcome}}")]},
        {"title": "Fan-out records/s by workload", "unit": "ops",
         "targets": [(f'sum by (workload) (rate(sfk_bridge_fanout_records_total{{{NS}}}[{R}]))', "{{workload}}")]},
        {"title": "Entity resyncs (GAP_OVERFLOW)", "unit": "short",
         "targets": [(f'sum by (object, outcome) (increase(sfk_bridge_resyncs_total{{{NS}}}[1h]))', "{{object}} {{outcome}}")]},
    ]),
    ("Dead letters", [
        {"title": "Bridge dead letters by error", "w": 12, "unit": "short",
         "targets": [(f'sum by (object, error_type) (increase(sfk_cdc_errors_total{{{NS}}}[15m]))', "{{object}} {{error_type}}")]},
        {"title": "Worker dead letters by workload and error class", "w": 12, "unit": "short",
         "targets": [(f'sum by (workload, error_class) (increase(sfk_dlq_messages_total{{{NS}}}[15m]))', "{{workload}} {{error_class}}"),
                     (f'sum by (reason) (increase(sfk_loader_dlq_total{{{NS}}}[15m]))', "loader {{reason}}")]},
    ]),
])

TT = "sfk_first_response_latency_seconds"
dash("sfk-business", "Salesforce KPIs / Business KPIs",
     "Time to first response, SLA compliance, routing and template usage.", [
    ("Time to first response", [
        {"title": "TTFR median", "type": "stat", "unit": "s", "w": 6,
         "targets": [(f'histogram_quantile(0.5, sum by (le) (rate({TT}_bucket{{{NS}}}[1h])))', "p50")]},
        {"title": "TTFR P95", "type": "stat", "unit": "s", "w": 6,
         "targets": [(f'histogram_quantile(0.95, sum by (le) (rate({TT}_bucket{{{NS}}}[1h])))', "p95")]},
        {"title": "SLA compliance (first response within 5 min)", "type": "gauge", "unit": "percentunit", "w": 6, "min": 0, "max": 1,
         "thresholds": [{"color": "red", "value": None}, {"color": "orange", "value": 0.7}, {"color": "green", "value": 0.9}],
         "targets": [(f'sum(rate({TT}_bucket{{{NS}, le=~"300(\\\\.0)?"}}[1h])) / sum(rate({TT}_count{{{NS}}}[1h]))', "5 min")]},
        {"title": "SLA compliance (first response within 1 h)", "type": "gauge", "unit": "percentunit", "w": 6, "min": 0, "max": 1,
         "thresholds": [{"color": "red", "value": None}, {"color": "orange", "value": 0.9}, {"color": "green", "value": 0.98}],
         "targets": [(f'sum(rate({TT}_bucket{{{NS}, le=~"3600(\\\\.0)?"}}[1h])) / sum(rate({TT}_count{{{NS}}}[1h]))', "1 h")]},
        {"title": "TTFR median and P95 over time", "w": 12, "unit": "s",
         "targets": [(f'histogram_quantile(0.5, sum by (le) (rate({TT}_bucket{{{NS}}}[{R}])))', "p50"),
                     (f'histogram_quantile(0.95, sum by (le) (rate({TT}_bucket{{{NS}}}[{R}])))', "p95")]},
        {"title": "TTFR P95 by segment and region", "w": 12, "unit": "s",
         "targets": [(f'histogram_quantile(0.95, sum by (le, segment, region) (rate({TT}_bucket{{{NS}}}[1h])))', "{{segment}} / {{region}}")]},
        {"title": "First-response updates by outcome", "w": 12, "unit": "ops",
         "desc": "applied, not earlier than the stored one, ...",
         "targets": [(f'sum by (outcome) (rate(sfk_first_response_updates_total{{{NS}}}[{R}]))', "{{outcome}}")]},
    ]),
    ("Routing", [
        {"title": "Leads routed by outcome", "unit": "short",
         "targets": [(f'sum by (outcome) (increase(sfk_decisions_total{{{NS}, workload="lead.route"}}[1h]))', "{{outcome}}")]},
        {"title": "Leads routed by segment and region", "unit": "short",
         "targets": [(f'sum by (segment, region) (increase(sfk_leads_routed_total{{{NS}}}[1h]))', "{{segment}} / {{region}}")]},
        {"title": "Assignment latency P50 / P95", "unit": "s",
         "targets": [(f'histogram_quantile(0.5, sum by (le) (rate(sfk_assignment_latency_seconds_bucket{{{NS}}}[{R}])))', "p50"),
                     (f'histogram_quantile(0.95, sum by (le) (rate(sfk_assignment_latency_seconds_bucket{{{NS}}}[{R}])))', "p95")]},
        {"title": "Fallback-queue (low-confidence) share", "type": "stat", "unit": "percentunit",
         "desc": "Leads the policy could not place in an owner pool (data missing) went to the fallback queue (outcome queued).",
         "thresholds": [{"color": "green", "value": None}, {"color": "orange", "value": 0.2}, {"color": "red", "value": 0.3}],
         "targets": [(f'sum(rate(sfk_decisions_total{{{NS}, workload="lead.route", outcome="queued"}}[1h])) / sum(rate(sfk_decisions_total{{{NS}, workload="lead.route", outcome=~"routed|queued"}}[1h]))', "queued")]},
    ]),
    ("Templates", [
        {"title": "Template suggestions by outcome", "w": 8, "unit": "short",
         "targets": [(f'sum by (outcome) (increase(sfk_template_suggestions_total{{{NS}}}[1h]))', "{{outcome}}")]},
        {"title": "Template usage by template", "w": 8, "unit": "short",
         "targets": [(f'sum by (template) (increase(sfk_template_suggestions_total{{{NS}}}[1h]))', "{{template}}")]},
        {"title": "Replies on suggested templates", "w": 8, "unit": "short",
         "targets": [(f'sum by (template) (increase(sfk_template_replies_total{{{NS}}}[1h]))', "{{template}}")]},
    ]),
])

dash("sfk-salesforce-api", "Salesforce KPIs / Salesforce API budget and tokens",
     "Daily API budget (Sforce-Limit-Info), the quota governor, REST traffic and the shared token cache.", [
    ("API budget", [
        {"title": "Daily API usage", "type": "gauge", "unit": "percentunit", "min": 0, "max": 1,
         "thresholds": [{"color": "green", "value": None}, {"color": "orange", "value": 0.8}, {"color": "red", "value": 0.95}],
         "targets": [(f'max(sfk_api_usage_ratio{{{NS}}})', "usage")]},
        {"title": "Quota governor state (0 ok, 1 slowing, 2 pausing)", "type": "stat",
         "targets": [(f'max(sfk_api_quota_state{{{NS}}})', "state")]},
        {"title": "REQUEST_LIMIT_EXCEEDED (1 h)", "type": "stat",
         "targets": [(f'sum(increase(sfk_api_limit_exceeded_total{{{NS}}}[1h]))', "limit exceeded")]},
        {"title": "API requests/s by object and status", "w": 12, "unit": "reqps",
         "targets": [(f'sum by (object, status) (rate(sfk_api_requests_total{{{NS}}}[{R}]))', "{{object}} {{status}}")]},
        {"title": "API request duration P95 by method", "w": 12, "unit": "s",
         "targets": [(f'histogram_quantile(0.95, sum by (le, method) (rate(sfk_api_request_duration_seconds_bucket{{{NS}}}[{R}])))', "{{method}}")]},
        {"title": "Retries by error", "w": 12, "unit": "ops",
         "targets": [(f'sum by (error) (rate(sfk_api_retries_total{{{NS}}}[{R}]))', "{{error}}")]},
    ]),
    ("Tokens", [
        {"title": "Token cache lookups by result", "unit": "ops",
         "targets": [(f'sum by (result) (rate(sfk_token_cache_requests_total{{{NS}}}[{R}]))', "{{result}}")]},
        {"title": "Token cache hit ratio", "type": "stat", "unit": "percentunit",
         "targets": [(f'sum(rate(sfk_token_cache_requests_total{{{NS}, result="hit"}}[1h])) / sum(rate(sfk_token_cache_requests_total{{{NS}}}[1h]))', "hit ratio")]},
        {"title": "Processes with a degraded token cache", "type": "stat",
         "thresholds": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
         "targets": [(f'sum(sfk_token_cache_degraded{{{NS}}})', "degraded")]},
        {"title": "Token requests by HTTP status", "unit": "short",
         "targets": [(f'sum by (status) (increase(sfk_auth_requests_total{{{NS}}}[1h]))', "{{status}}")]},
        {"title": "Token request latency P95", "unit": "s",
         "targets": [(f'histogram_quantile(0.95, sum by (le) (rate(sfk_auth_latency_seconds_bucket{{{NS}}}[{R}])))', "p95")]},
    ]),
])

dash("sfk-workers", "Salesforce KPIs / Workers and consumer lag",
     "Replicas per workload, Kafka consumer lag, decisions, errors.", [
    ("Scaling", [
        {"title": "Active workers by workload", "w": 12, "unit": "short",
         "targets": [(f'sum by (workload) (sfk_active_workers{{{NS}}})', "{{workload}}")]},
        {"title": "Worker pods available (kube-state-metrics)", "w": 12, "unit": "short",
         "desc": "Needs kube-state-metrics (kube-prometheus-stack ships it).",
         "targets": [(f'sum by (deployment) (kube_deployment_status_replicas_available{{{NS}, deployment=~".*-worker-.*"}})', "{{deployment}}")]},
        {"title": "Consumer lag by topic", "w": 12, "unit": "short",
         "targets": [(f'max by (topic) (sfk_kafka_consumer_lag{{{NS}}})', "{{topic}}")]},
        {"title": "End-to-end latency P95 (commit -> write acknowledged)", "w": 12, "unit": "s",
         "targets": [(f'histogram_quantile(0.95, sum by (le, workload) (rate(sfk_worker_processing_latency_seconds_bucket{{{NS}}}[{R}])))', "{{workload}}")]},
    ]),
    ("Work", [
        {"title": "Decisions/s by workload and outcome", "w": 12, "unit": "ops",
         "targets": [(f'sum by (workload, outcome) (rate(sfk_decisions_total{{{NS}}}[{R}]))', "{{workload}} {{outcome}}")]},
        {"title": "Flywheel records/s by outcome", "w": 12, "unit": "ops",
         "targets": [(f'sum by (workload, outcome) (rate(sfk_flywheel_records_total{{{NS}}}[{R}]))', "{{workload}} {{outcome}}")]},
        {"title": "Loader: records written/s by sink", "unit": "ops",
         "targets": [(f'sum by (sink) (rate(sfk_loader_records_written_total{{{NS}}}[{R}]))', "{{sink}}")]},
        {"title": "Loader lag", "unit": "s",
         "targets": [(f'max(sfk_loader_lag_seconds{{{NS}}})', "lag")]},
        {"title": "Loader flush errors (15 min)", "unit": "short",
         "targets": [(f'sum by (sink) (increase(sfk_loader_flush_errors_total{{{NS}}}[15m]))', "{{sink}}")]},
        {"title": "Redis reachable", "type": "stat",
         "targets": [(f'min(sfk_redis_up{{{NS}}})', "redis up")]},
        {"title": "Versions running", "type": "table",
         "targets": [(f'count by (version) (sfk_build_info{{{NS}}})', "{{version}}")]},
    ]),
])
print("ok")
