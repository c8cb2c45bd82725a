// Package api holds the wire types of steady's HTTP API (version 1, under
// /v1) and the table that maps an error code to its HTTP status and to the
// exit status of the CLI. It imports nothing of steady's internals, so the
// agent, the Go client (api/client) and third-party tools can all share it.
package api
