// Package serve serves a topology over HTTP across instances: it owns what
// every application of the framework needs beside its own resources.
//
// A Server wraps a queryapi.API over a running *streamfold.Runtime:
//
//   - key→owner routing: a route that reads one key's partition (a
//     Resource, a Get, a Handle with KeyFromPath or KeyFromBody) is answered
//     by the instance that owns the partition; other instances forward it
//     (X-Served-By, X-Routed-Via, X-Streamfold-Timeout; 421, 502, 503, 504
//     when no owner can answer), and GET /membership says who owns what;
//   - stale reads: ?stale=ok answers from any local copy, with X-Stale and
//     X-Lag-Records;
//   - readiness (/readyz) and metrics (/metrics) from the runtime;
//   - /metrics: a Prometheus registry per Server with the Go runtime and
//     process collectors, the groups' counters by group, input topic and
//     partition (streamfold_records_{processed,applied,duplicate}_total,
//     streamfold_dead_letters_total, streamfold_retries_total, …), the
//     records parked now (streamfold_records_parked), the
//     consumer lag the brokers report (streamfold_consumer_lag_records;
//     asked at scrape time, at most a second old, left out of a scrape they do not answer in 3 s),
//     the tables' restore (streamfold_restore_remaining_records, …) and
//     queryapi's request metrics (streamfold_http_*);
//   - the operator endpoints: dead letters (/dlq) and parked records
//     (/parked), behind an admin token (or a loopback listener);
//   - a dashboard at GET /ui (ui.go, linked from /): one page embedded in
//     the binary, drawing the topology, the groups' partitions, owners, lag
//     and rates, restore progress, dead letters with re-drive, parked
//     records, a browser of the registered resources and the instance's
//     configuration (Options.Info) from JSON under /ui/api/, which is
//     operator information behind the admin token like /dlq;
//   - a restore progress bar on a terminal;
//   - with Options.TracerProvider, an OpenTelemetry server span per request
//     (tracing.go), a child of the caller's W3C traceparent, named by its
//     route; the records its handlers emit, and a request forwarded to a
//     key's owner, carry it on;
//   - one Run that processes and serves, and stops both cleanly.
//
// The routes that need an owner are derived from what the application
// registers: there is no second table of routes to keep in step.
//
// Listen binds the listener before streamfold.Open, because the runtime
// advertises the address other instances forward to.
package serve
