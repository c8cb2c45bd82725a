package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/auth"
	"github.com/steady-ha/steady/internal/cluster"
)

// ClusterAdmin forms the cluster: the agent implements it (init and join
// restart the agent, so they live there, not here).
type ClusterAdmin interface {
	Init(ctx context.Context, name, address string) (*cluster.State, error)
	CreateToken(ctx context.Context, ttl time.Duration, by string) (string, time.Time, error)
	Join(ctx context.Context, target, token, address string) (*cluster.State, error)
	Admit(ctx context.Context, req cluster.JoinRequest) (*cluster.JoinResponse, error)
	Remove(ctx context.Context, node string) error
	Leave(ctx context.Context) error
}

// Remote is the agent-to-agent listener: TLS on the node's address with
// the cluster's certificates. Today it serves the join handshake, which
// is authenticated by the join token, not by a client certificate.
type Remote struct {
	Address string
	TLS     *tls.Config
}

func (s *Server) clusterRoutes() []routeSpec {
	return []routeSpec{
		{"POST /v1/cluster/init", auth.Change, s.clusterInit},
		{"POST /v1/cluster/tokens", auth.Change, s.clusterToken},
		{"POST /v1/cluster/join", auth.Change, s.clusterJoin},
		{"POST /v1/cluster/remove", auth.Change, s.clusterRemove},
		{"POST /v1/cluster/leave", auth.Change, s.clusterLeave},
	}
}

func (s *Server) clusterInit(w http.ResponseWriter, r *http.Request) error {
	var req api.ClusterInitRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	st, err := s.opts.ClusterAdmin.Init(r.Context(), req.Name, req.Address)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.ClusterFormed{Name: st.Name, ID: st.ID, Address: st.Address, Restarting: true})
	return nil
}

func (s *Server) clusterToken(w http.ResponseWriter, r *http.Request) error {
	var req api.ClusterTokenRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	ttl := time.Duration(req.TTL)
	if ttl == 0 {
		ttl = time.Hour
	}
	by := "unknown"
	if p, ok := r.Context().Value(principalKey{}).(auth.Principal); ok {
		by = p.String()
	}
	tok, exp, err := s.opts.ClusterAdmin.CreateToken(r.Context(), ttl, by)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.ClusterToken{Token: tok, Expires: exp})
	return nil
}

func (s *Server) clusterJoin(w http.ResponseWriter, r *http.Request) error {
	var req api.ClusterJoinRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	st, err := s.opts.ClusterAdmin.Join(r.Context(), req.Target, req.Token, req.Address)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.ClusterFormed{Name: st.Name, ID: st.ID, Address: st.Address, Restarting: true})
	return nil
}

// startRemote serves the agent-to-agent listener.
func (s *Server) startRemote() error {
	r := s.opts.Remote
	ln, err := net.Listen("tcp", r.Address)
	if err != nil {
		return fmt.Errorf("server: the cluster listener on %s: %w", r.Address, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/cluster/admit", func(w http.ResponseWriter, req *http.Request) {
		var jr cluster.JoinRequest
		dec := json.NewDecoder(io.LimitReader(req.Body, maxBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&jr); err != nil {
			writeJSON(w, http.StatusBadRequest, api.Error{Code: api.CodeInvalid, Message: "join request: " + err.Error()})
			return
		}
		res, err := s.opts.ClusterAdmin.Admit(req.Context(), jr)
		if err != nil {
			s.log.Warn("join refused", "node", jr.Node, "from", req.RemoteAddr, "err", err)
			ae := errorFor(err)
			writeJSON(w, ae.Code.HTTPStatus(), ae)
			return
		}
		s.log.Info("node admitted", "node", jr.Node, "address", jr.Address)
		writeJSON(w, http.StatusOK, res)
	})
	s.remote = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return s.base }}
	s.serve(s.remote, tls.NewListener(ln, r.TLS))
	return nil
}

func (s *Server) clusterRemove(w http.ResponseWriter, r *http.Request) error {
	var req api.ClusterRemoveRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := s.opts.ClusterAdmin.Remove(r.Context(), req.Node); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"removed": req.Node})
	return nil
}

func (s *Server) clusterLeave(w http.ResponseWriter, r *http.Request) error {
	if err := s.opts.ClusterAdmin.Leave(r.Context()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"restarting": true})
	return nil
}
