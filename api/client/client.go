// Package client is the Go client of the steady agent's API. The steady
// CLI uses nothing else to talk to an agent; other Go programs may use it
// too. A Client is safe for concurrent use.
//
//	c := client.New(client.Socket(""))
//	st, err := c.Status(ctx)
//
// Every error returned for a failed request is an *api.Error, so callers
// can switch on its Code; an agent that cannot be reached gives
// api.CodeUnavailable.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/steady-ha/steady/api"
)

// DefaultSocket is where an agent listens unless configured otherwise.
const DefaultSocket = "/run/steady/steady.sock"

// Socket picks the socket to use: flag when set, else $STEADY_SOCKET,
// else DefaultSocket.
func Socket(flag string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv("STEADY_SOCKET"); env != "" {
		return env
	}
	return DefaultSocket
}

// Client talks to one agent over its Unix socket.
type Client struct {
	socket string
	hc     *http.Client
}

// New returns a client for the agent listening on socket.
func New(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns: 4,
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr}}
}

// SocketPath is the socket the client uses.
func (c *Client) SocketPath() string { return c.socket }

// do sends a request and decodes a JSON answer into out (when non-nil).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	resp, err := c.send(ctx, method, path, query, body, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return &api.Error{Code: api.CodeInternal, Message: fmt.Sprintf("decoding the agent's answer to %s %s: %v", method, path, err)}
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, path string, query url.Values, body any, header http.Header) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, &api.Error{Code: api.CodeInvalid, Message: fmt.Sprintf("encoding the request: %v", err)}
		}
		rd = bytes.NewReader(b)
	}
	// path is already escaped (names may hold "," or "/"): parse it, so
	// that it is not escaped twice.
	u, err := url.Parse("http://steady" + path)
	if err != nil {
		return nil, &api.Error{Code: api.CodeInvalid, Message: fmt.Sprintf("request path %q: %v", path, err)}
	}
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, &api.Error{Code: api.CodeInternal, Message: err.Error()}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.unreachable(ctx, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

func (c *Client) unreachable(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		code := api.CodeUnavailable
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			code = api.CodeTimeout
		}
		return &api.Error{Code: code, Message: fmt.Sprintf("request to the agent at %s: %v", c.socket, ctx.Err())}
	}
	msg := fmt.Sprintf("cannot reach the steady agent at %s", c.socket)
	var op *net.OpError
	switch {
	case errors.Is(err, os.ErrNotExist):
		msg += ": no socket there (is the agent running? start it with \"steady agent\", or point STEADY_SOCKET or --socket at its socket)"
	case errors.Is(err, os.ErrPermission):
		return &api.Error{Code: api.CodeUnauthorized, Message: msg + ": permission denied on the socket (join group steady to read, steady-admin to change)"}
	case errors.As(err, &op) && strings.Contains(op.Err.Error(), "connection refused"):
		msg += ": connection refused (the agent is not running; the socket is stale)"
	default:
		msg += ": " + err.Error()
	}
	return &api.Error{Code: api.CodeUnavailable, Message: msg}
}

func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var ae api.Error
	if err := json.Unmarshal(b, &ae); err != nil || ae.Code == "" {
		return &api.Error{Code: api.CodeInternal, Message: fmt.Sprintf("the agent answered %s: %s", resp.Status, strings.TrimSpace(string(b)))}
	}
	return &ae
}

// Status returns the agent's status.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var st api.Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, nil, &st)
	return st, err
}

// EventQuery selects events.
type EventQuery struct {
	Class, Subclass string
	// Since lists events after this sequence number; with Last unset and
	// Since zero, a list starts at the oldest event and a stream at the
	// next new one.
	Since    uint64
	HasSince bool
	Last     int // the newest N matching events (then, when following, new ones)
	Limit    int
}

func (q EventQuery) values() url.Values {
	v := url.Values{}
	if q.Class != "" {
		v.Set("class", q.Class)
	}
	if q.Subclass != "" {
		v.Set("subclass", q.Subclass)
	}
	if q.HasSince || q.Since > 0 {
		v.Set("since", strconv.FormatUint(q.Since, 10))
	}
	if q.Last > 0 {
		v.Set("last", strconv.Itoa(q.Last))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// Events lists events.
func (c *Client) Events(ctx context.Context, q EventQuery) (api.EventList, error) {
	var l api.EventList
	err := c.do(ctx, http.MethodGet, "/v1/events", q.values(), nil, &l)
	return l, err
}

// PublishEvent publishes an event as the calling user and returns its
// sequence number once it is durable.
func (c *Client) PublishEvent(ctx context.Context, req api.PublishRequest) (uint64, error) {
	var resp api.PublishResponse
	err := c.do(ctx, http.MethodPost, "/v1/events", nil, req, &resp)
	return resp.Seq, err
}

// Subscribers lists the script subscribers.
func (c *Client) Subscribers(ctx context.Context) ([]api.Subscriber, error) {
	var subs []api.Subscriber
	err := c.do(ctx, http.MethodGet, "/v1/events/subscribers", nil, nil, &subs)
	return subs, err
}

// AddSubscriber adds a script subscriber.
func (c *Client) AddSubscriber(ctx context.Context, req api.SubscriberRequest) (api.Subscriber, error) {
	var sub api.Subscriber
	err := c.do(ctx, http.MethodPost, "/v1/events/subscribers", nil, req, &sub)
	return sub, err
}

// RemoveSubscriber removes a script subscriber.
func (c *Client) RemoveSubscriber(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/events/subscribers/"+url.PathEscape(id), nil, nil, nil)
}

// Metrics returns the agent's metrics in Prometheus text format.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	resp, err := c.send(ctx, http.MethodGet, "/metrics", nil, nil, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// EventStream is a live stream of events; see FollowEvents.
type EventStream struct {
	body io.ReadCloser
	r    *bufio.Reader
}

// FollowEvents streams matching events until ctx ends or Close.
func (c *Client) FollowEvents(ctx context.Context, q EventQuery) (*EventStream, error) {
	v := q.values()
	v.Set("follow", "true")
	resp, err := c.send(ctx, http.MethodGet, "/v1/events", v, nil, http.Header{"Accept": {"text/event-stream"}})
	if err != nil {
		return nil, err
	}
	return &EventStream{body: resp.Body, r: bufio.NewReader(resp.Body)}, nil
}

// Gap is returned by EventStream.Next when the agent's journal removed
// events before they could be sent.
type Gap struct{ After, Next uint64 }

func (g *Gap) Error() string {
	return fmt.Sprintf("events %d..%d were removed by journal retention before they were sent", g.After+1, g.Next-1)
}

// Next returns the next event. It returns a *Gap error for a gap (the
// stream goes on), and io.EOF when the agent ended the stream.
func (s *EventStream) Next() (api.Event, error) {
	var kind string
	var data []byte
	for {
		line, err := s.r.ReadBytes('\n')
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.Canceled) {
				return api.Event{}, io.EOF
			}
			return api.Event{}, &api.Error{Code: api.CodeUnavailable, Message: "event stream: " + err.Error()}
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if kind == "" && data == nil {
				continue
			}
			switch kind {
			case "gap":
				var g Gap
				var raw struct{ After, Next uint64 }
				if json.Unmarshal(data, &raw) == nil {
					g = Gap(raw)
				}
				return api.Event{}, &g
			case "event", "":
				var ev api.Event
				if err := json.Unmarshal(data, &ev); err != nil {
					return api.Event{}, &api.Error{Code: api.CodeInternal, Message: "event stream: " + err.Error()}
				}
				return ev, nil
			}
			kind, data = "", nil
		case line[0] == ':':
			// comment (keepalive)
		case bytes.HasPrefix(line, []byte("event:")):
			kind = string(bytes.TrimSpace(line[6:]))
		case bytes.HasPrefix(line, []byte("data:")):
			data = append(data, bytes.TrimSpace(line[5:])...)
		}
	}
}

// Close ends the stream.
func (s *EventStream) Close() error { return s.body.Close() }
