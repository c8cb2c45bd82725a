package api

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// Code classifies an error for machines: the HTTP status the agent answers
// with and the exit status of the CLI both follow from it, through the one
// table below.
type Code string

// The error codes of API version 1. New codes may be added; a client that
// does not know a code treats it as CodeInternal.
const (
	CodeInvalid      Code = "invalid_argument"  // the request itself is wrong
	CodeUnauthorized Code = "permission_denied" // the caller may not do this
	CodeNotFound     Code = "not_found"         // the named object does not exist
	CodeConflict     Code = "conflict"          // it exists already, or the state forbids it now
	CodeBusy         Code = "busy"              // another operation holds the object
	CodeRefused      Code = "refused"           // a party consulted (a client, a policy) said no
	CodeNotSupported Code = "not_supported"     // the object has no such operation
	CodeUnavailable  Code = "unavailable"       // the agent or its store cannot serve now
	CodeTimeout      Code = "timeout"           // the operation did not finish in time
	CodeInternal     Code = "internal"          // a bug or an unexpected failure
)

// Exit statuses of the steady CLI. Compatibility personalities (pmfadm,
// cfgadm, scha_*) keep their own historic statuses instead.
const (
	ExitOK          = 0
	ExitFailure     = 1 // internal or unclassified failure
	ExitUsage       = 2 // bad command line, or the agent rejected the request as invalid
	ExitPermission  = 3
	ExitNotFound    = 4
	ExitConflict    = 5 // conflict or busy
	ExitUnavailable = 6 // agent not running, socket missing, store unavailable
	ExitTimeout     = 7
	ExitRefused     = 8
	ExitUnsupported = 9
)

// ExitStatuses describes every exit status of the steady CLI, in order.
func ExitStatuses() []ExitStatusRow {
	return []ExitStatusRow{
		{ExitOK, "success"},
		{ExitFailure, "failure: an unexpected error, or a check that found a problem"},
		{ExitUsage, "usage: a bad command line, or a request the agent rejected as invalid"},
		{ExitPermission, "permission denied"},
		{ExitNotFound, "the named object does not exist"},
		{ExitConflict, "conflict: the object exists already, its state forbids the change, or another operation holds it"},
		{ExitUnavailable, "unavailable: the agent is not running or cannot be reached, or its store cannot serve"},
		{ExitTimeout, "the operation did not finish in time"},
		{ExitRefused, "refused by a party that was consulted"},
		{ExitUnsupported, "the object does not support the operation"},
	}
}

// ExitStatusRow is one line of ExitStatuses.
type ExitStatusRow struct {
	Status  int
	Meaning string
}

type codeInfo struct {
	status int
	exit   int
	doc    string
}

// codes is the single place where error codes meet HTTP statuses and exit
// statuses. docs/steady.md reproduces it (a test keeps them in step).
var codes = map[Code]codeInfo{
	CodeInvalid:      {http.StatusBadRequest, ExitUsage, "the request or command line is wrong"},
	CodeUnauthorized: {http.StatusForbidden, ExitPermission, "the caller may not do this"},
	CodeNotFound:     {http.StatusNotFound, ExitNotFound, "the named object does not exist"},
	CodeConflict:     {http.StatusConflict, ExitConflict, "the object exists already or its state forbids the change"},
	CodeBusy:         {http.StatusConflict, ExitConflict, "another operation holds the object"},
	CodeRefused:      {http.StatusUnprocessableEntity, ExitRefused, "a party that was consulted refused"},
	CodeNotSupported: {http.StatusNotImplemented, ExitUnsupported, "the object does not support the operation"},
	CodeUnavailable:  {http.StatusServiceUnavailable, ExitUnavailable, "the agent or its store cannot serve now"},
	CodeTimeout:      {http.StatusGatewayTimeout, ExitTimeout, "the operation did not finish in time"},
	CodeInternal:     {http.StatusInternalServerError, ExitFailure, "an unexpected failure"},
}

// HTTPStatus is the status the agent answers with for c.
func (c Code) HTTPStatus() int {
	if i, ok := codes[c]; ok {
		return i.status
	}
	return http.StatusInternalServerError
}

// ExitStatus is the exit status of the CLI for c.
func (c Code) ExitStatus() int {
	if i, ok := codes[c]; ok {
		return i.exit
	}
	return ExitFailure
}

// CodeTable describes every code, sorted by exit status then code, for
// documentation and "steady help exit-status".
func CodeTable() []CodeRow {
	rows := make([]CodeRow, 0, len(codes))
	for c, i := range codes {
		rows = append(rows, CodeRow{Code: c, HTTPStatus: i.status, ExitStatus: i.exit, Meaning: i.doc})
	}
	sort.Slice(rows, func(a, b int) bool {
		if rows[a].ExitStatus != rows[b].ExitStatus {
			return rows[a].ExitStatus < rows[b].ExitStatus
		}
		return rows[a].Code < rows[b].Code
	})
	return rows
}

// CodeRow is one line of CodeTable.
type CodeRow struct {
	Code       Code
	HTTPStatus int
	ExitStatus int
	Meaning    string
}

// Error is the body of every failed API response and the error the Go
// client returns for it.
type Error struct {
	Code    Code              `json:"code"`
	Message string            `json:"message"`
	Details map[string]string `json:"details,omitempty"`
}

// Error returns the message with the details in a stable order.
func (e *Error) Error() string {
	if len(e.Details) == 0 {
		return e.Message
	}
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(e.Message)
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %s: %s", k, e.Details[k])
	}
	return b.String()
}

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code carried by err, or CodeInternal when err is not
// (and does not wrap) an *Error.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
