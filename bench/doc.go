// Package bench holds benchmarks that are whole scenarios run against the
// real steady binary (idle cost of an agent; later failover and scale).
// They print their figures with b.ReportMetric; run them with
// "make bench" (go test -run '^$' -bench . -benchtime 1x ./bench/).
package bench
