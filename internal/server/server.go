// Package server serves steady's HTTP API (/v1) on the local Unix socket,
// and Prometheus metrics on the socket and optionally on a TCP address.
//
// Every route is declared once in routes() with the access it needs
// (auth.Read or auth.Change); the caller's identity comes from the
// socket's peer credentials and the policy decides before any handler
// runs. Handlers return errors; errorFor maps them to api.Error codes, and
// api's table maps codes to HTTP statuses, in one place.
//
// A Server is started by Start and stopped by Close, which ends streams
// and waits for requests in flight.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/auth"
	"github.com/steady-ha/steady/internal/cluster"
	"github.com/steady-ha/steady/internal/dr"
	"github.com/steady-ha/steady/internal/event"
	"github.com/steady-ha/steady/internal/ipmp"
	"github.com/steady-ha/steady/internal/pmf"
	"github.com/steady-ha/steady/internal/rcm"
	"github.com/steady-ha/steady/internal/rcm/script"
	"github.com/steady-ha/steady/internal/rgm"
	"github.com/steady-ha/steady/internal/rgm/model"
)

// Options configures New. Backends left nil make their routes answer 503.
type Options struct {
	Socket         string
	SocketGroup    string // owns the socket when the group exists
	MetricsAddress string // optional TCP address for /metrics
	Policy         *auth.Policy
	Logger         *slog.Logger
	Gatherer       prometheus.Gatherer
	Registerer     prometheus.Registerer

	Status      func(ctx context.Context) api.Status
	Bus         *event.Bus
	Subscribers *event.Subscribers
	PMF         *pmf.Manager
	RGM         *rgm.Manager
	DR          *dr.Manager
	RCM         *rcm.Engine
	Scripts     *script.Set
	IPMP        *ipmp.Daemon
	Cluster     *cluster.Member
	// ClusterAdmin forms the cluster; Remote, when set, is the
	// agent-to-agent listener.
	ClusterAdmin ClusterAdmin
	Remote       *Remote
	// KeepAlive is the interval of comments on idle event streams.
	KeepAlive time.Duration
}

// Server is the API server of one agent.
type Server struct {
	opts Options
	log  *slog.Logger
	mux  *http.ServeMux

	http, metrics *http.Server
	remote        *http.Server
	ln, metricsLn net.Listener
	base          context.Context // parent of every request; canceled first at Close
	cancel        context.CancelFunc
	wg            sync.WaitGroup

	requests *prometheus.CounterVec
}

type principalKey struct{}

// handlerFunc is what routes implement: write a response or return an error.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

type route struct {
	verb auth.Verb
	h    handlerFunc
}

// New builds the server; Start opens the listeners.
func New(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 15 * time.Second
	}
	if opts.Gatherer == nil {
		opts.Gatherer = prometheus.DefaultGatherer
	}
	s := &Server{
		opts: opts,
		log:  opts.Logger,
		mux:  http.NewServeMux(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steady_api_requests_total", Help: "API requests by route and HTTP status.",
		}, []string{"route", "status"}),
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(s.requests); err != nil {
			return nil, fmt.Errorf("server: metrics: %w", err)
		}
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	byPath := map[string]map[string]route{}
	for _, r := range s.routes() {
		method, path, _ := strings.Cut(r.pattern, " ")
		if byPath[path] == nil {
			byPath[path] = map[string]route{}
		}
		byPath[path][method] = route{verb: r.verb, h: r.h}
	}
	for path, methods := range byPath {
		s.mux.Handle(path, s.dispatch(path, methods))
	}
	s.mux.Handle("/", s.wrap("unknown", route{verb: auth.Read, h: func(w http.ResponseWriter, r *http.Request) error {
		return api.Errorf(api.CodeNotFound, "no such API route: %s %s", r.Method, r.URL.Path)
	}}))
	return s, nil
}

// routes is the whole API. Adding a route here is the only way to serve
// one, so every route has an access check.
// routeSpec is one API route: its pattern, the verb the policy checks, and
// its handler. Each subsystem's file lists its own.
type routeSpec struct {
	pattern string
	verb    auth.Verb
	h       handlerFunc
}

func (s *Server) routes() []routeSpec {
	routes := []routeSpec{
		{"GET /v1/status", auth.Read, s.getStatus},
		{"GET /v1/events", auth.Read, s.getEvents},
		{"POST /v1/events", auth.Change, s.postEvent},
		{"GET /v1/events/subscribers", auth.Read, s.listSubscribers},
		{"POST /v1/events/subscribers", auth.Change, s.addSubscriber},
		{"DELETE /v1/events/subscribers/{id}", auth.Change, s.removeSubscriber},
		// The process monitor checks ownership per tag (see pmf.go).
		{"GET /v1/pmf", auth.Read, s.getPMF},
		{"GET /v1/pmf/tags", auth.Read, s.listPMF},
		{"POST /v1/pmf/tags", auth.Read, s.startPMF},
		{"GET /v1/pmf/tags/{tag}", auth.Read, s.getPMFTag},
		{"PATCH /v1/pmf/tags/{tag}", auth.Read, s.modifyPMF},
		{"POST /v1/pmf/tags/{tag}/stop", auth.Read, s.signalPMF(true)},
		{"POST /v1/pmf/tags/{tag}/kill", auth.Read, s.signalPMF(false)},
		{"POST /v1/pmf/tags/{tag}/wait", auth.Read, s.waitPMF},
		{"GET /v1/cluster/status", auth.Read, s.clusterStatus},
		{"GET /metrics", auth.Read, s.getMetrics},
	}
	routes = append(routes, s.rgmRoutes()...)
	routes = append(routes, s.clusterRoutes()...)
	routes = append(routes, s.ipmpRoutes()...)
	return append(routes, s.drRoutes()...)
}

// dispatch picks the route for the method, answering 405 with the allowed
// methods otherwise.
func (s *Server) dispatch(path string, methods map[string]route) http.Handler {
	handlers := map[string]http.Handler{}
	var allowed []string
	for m, r := range methods {
		handlers[m] = s.wrap(m+" "+path, r)
		allowed = append(allowed, m)
	}
	sort.Strings(allowed)
	notAllowed := s.wrap(path, route{verb: auth.Read, h: func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, api.Error{Code: api.CodeInvalid,
			Message: fmt.Sprintf("method %s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allowed, " or "))})
		return nil
	}})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := handlers[r.Method]; ok {
			h.ServeHTTP(w, r)
			return
		}
		notAllowed.ServeHTTP(w, r)
	})
}

// wrap applies the policy, runs the handler, renders its error and counts
// the request.
func (s *Server) wrap(name string, rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() { s.requests.WithLabelValues(name, fmt.Sprint(sw.status)).Inc() }()
		pr, ok := r.Context().Value(principalKey{}).(auth.Principal)
		if !ok {
			s.writeError(sw, r, api.Errorf(api.CodeUnauthorized, "the caller could not be identified"))
			return
		}
		if err := s.opts.Policy.Allow(pr, rt.verb); err != nil {
			s.log.Info("request refused", "principal", pr.String(), "pid", pr.PID, "method", r.Method, "path", r.URL.Path)
			s.writeError(sw, r, err)
			return
		}
		if err := rt.h(sw, r); err != nil {
			s.writeError(sw, r, err)
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// errorCodes maps the sentinel errors of the subsystems to API codes.
var errorCodes = []struct {
	err  error
	code api.Code
}{
	{auth.ErrDenied, api.CodeUnauthorized},
	{event.ErrSubscriberNotFound, api.CodeNotFound},
	{event.ErrSubscriberInvalid, api.CodeInvalid},
	{event.ErrInvalid, api.CodeInvalid},
	{event.ErrTooLarge, api.CodeInvalid},
	{event.ErrClosed, api.CodeUnavailable},
	{pmf.ErrInvalid, api.CodeInvalid},
	{pmf.ErrNotFound, api.CodeNotFound},
	{pmf.ErrExists, api.CodeConflict},
	{pmf.ErrPermission, api.CodeUnauthorized},
	{pmf.ErrTimeout, api.CodeTimeout},
	{pmf.ErrClosed, api.CodeUnavailable},
	{rgm.ErrNotFound, api.CodeNotFound},
	{rgm.ErrExists, api.CodeConflict},
	{rgm.ErrState, api.CodeConflict},
	{rgm.ErrRefused, api.CodeRefused},
	{rgm.ErrClosed, api.CodeUnavailable},
	{model.ErrInvalid, api.CodeInvalid},
	{cluster.ErrAlreadyMember, api.CodeConflict},
	{cluster.ErrNotMember, api.CodeConflict},
	{cluster.ErrJoin, api.CodeRefused},
	{cluster.ErrRemove, api.CodeConflict},
	{cluster.ErrTokenRefused, api.CodeRefused},
	{cluster.ErrBadToken, api.CodeInvalid},
	{cluster.ErrBadCSR, api.CodeInvalid},
	{cluster.ErrBadNodeName, api.CodeInvalid},
	{dr.ErrNotFound, api.CodeNotFound},
	{ipmp.ErrUnknown, api.CodeNotFound},
	{ipmp.ErrRedundancy, api.CodeRefused},
	{ipmp.ErrNotOffline, api.CodeConflict},
	{ipmp.ErrDupMAC, api.CodeConflict},
	{ipmp.ErrExists, api.CodeConflict},
	{dr.ErrInvalid, api.CodeInvalid},
	{dr.ErrState, api.CodeConflict},
	{dr.ErrNotSupported, api.CodeNotSupported},
	{rcm.ErrBusy, api.CodeBusy},
	{rcm.ErrRefused, api.CodeRefused},
	{rcm.ErrInvalid, api.CodeInvalid},
	{rcm.ErrNotFound, api.CodeNotFound},
	{context.DeadlineExceeded, api.CodeTimeout},
}

// errorFor turns any error into the API error the client sees.
func errorFor(err error) *api.Error {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae
	}
	for _, m := range errorCodes {
		if errors.Is(err, m.err) {
			return &api.Error{Code: m.code, Message: err.Error()}
		}
	}
	return &api.Error{Code: api.CodeInternal, Message: err.Error()}
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := errorFor(err)
	if ae.Code == api.CodeInternal {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, ae.Code.HTTPStatus(), ae)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// maxBody bounds request bodies.
const maxBody = 1 << 20

// decodeBody reads exactly one JSON object into v, refusing unknown
// fields, trailing data and bodies over 1 MiB.
func decodeBody(r *http.Request, v any) error {
	lr := &io.LimitedReader{R: r.Body, N: maxBody + 1}
	dec := json.NewDecoder(lr)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		switch {
		case lr.N <= 0:
			return api.Errorf(api.CodeInvalid, "request body: larger than %d bytes", maxBody)
		case errors.Is(err, io.EOF):
			return api.Errorf(api.CodeInvalid, "request body: empty; a JSON object is required")
		}
		return api.Errorf(api.CodeInvalid, "request body: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return api.Errorf(api.CodeInvalid, "request body: unexpected data after the JSON object")
	}
	return nil
}

// Start listens on the socket (and the metrics address) and serves.
func (s *Server) Start() error {
	ln, err := listenSocket(s.opts.Socket, s.opts.SocketGroup)
	if err != nil {
		return err
	}
	s.ln = ln
	s.http = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return s.base },
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			uc, ok := c.(*net.UnixConn)
			if !ok {
				return ctx
			}
			pr, err := auth.PeerCredentials(uc)
			if err != nil {
				s.log.Warn("cannot read peer credentials", "err", err)
				return ctx
			}
			return context.WithValue(ctx, principalKey{}, pr)
		},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.serve(s.http, ln)
	if s.opts.MetricsAddress != "" {
		mln, err := net.Listen("tcp", s.opts.MetricsAddress)
		if err != nil {
			s.Close(context.Background())
			return fmt.Errorf("server: metrics listener on %s: %w", s.opts.MetricsAddress, err)
		}
		s.metricsLn = mln
		m := http.NewServeMux()
		m.Handle("GET /metrics", promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{}))
		s.metrics = &http.Server{Handler: m, ReadHeaderTimeout: 10 * time.Second}
		s.serve(s.metrics, mln)
	}
	if s.opts.Remote != nil {
		if err := s.startRemote(); err != nil {
			s.Close(context.Background())
			return err
		}
	}
	return nil
}

func (s *Server) serve(hs *http.Server, ln net.Listener) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("API server stopped", "err", err)
		}
	}()
}

// MetricsAddr is the bound metrics address (useful with port 0), or "".
func (s *Server) MetricsAddr() string {
	if s.metricsLn == nil {
		return ""
	}
	return s.metricsLn.Addr().String()
}

// listenSocket creates the Unix socket with mode 0660, owned by group when
// it exists. A stale socket left by a crashed agent is replaced; a live
// one means another agent runs, which is an error.
func listenSocket(path, group string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("server: socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("server: %s exists and is not a socket; remove it or choose another api.socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("server: another agent is already serving on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("server: removing stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("server: %w", err)
	}
	if gid, ok := auth.LookupGroup(group); ok {
		if err := os.Chown(path, -1, int(gid)); err != nil {
			ln.Close()
			return nil, fmt.Errorf("server: giving the socket to group %s: %w", group, err)
		}
	}
	return ln, nil
}

// Close stops accepting requests, ends event streams, and waits for
// requests in flight until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	s.cancel()
	var errs []error
	for _, hs := range []*http.Server{s.http, s.metrics, s.remote} {
		if hs == nil {
			continue
		}
		if err := hs.Shutdown(ctx); err != nil {
			errs = append(errs, err)
			hs.Close()
		}
	}
	s.wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

func (s *Server) getMetrics(w http.ResponseWriter, r *http.Request) error {
	promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	return nil
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Status == nil {
		return api.Errorf(api.CodeUnavailable, "status is not available")
	}
	writeJSON(w, http.StatusOK, s.opts.Status(r.Context()))
	return nil
}

func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request) error {
	st, err := s.opts.Cluster.Status(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}
