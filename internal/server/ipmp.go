package server

import (
	"net/http"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/auth"
)

func (s *Server) ipmpRoutes() []routeSpec {
	return []routeSpec{
		{"GET /v1/ipmp", auth.Read, s.ipmpStatus},
		{"GET /v1/ipmp/probes", auth.Read, s.ipmpProbes},
		{"POST /v1/ipmp/offline", auth.Change, s.ipmpOffline(true)},
		{"POST /v1/ipmp/undo-offline", auth.Change, s.ipmpOffline(false)},
	}
}

// ipmpStatus answers an empty state on a node without groups: nothing is
// multipathed, which is not an error.
func (s *Server) ipmpStatus(w http.ResponseWriter, r *http.Request) error {
	if s.opts.IPMP == nil {
		writeJSON(w, http.StatusOK, api.IPMPStatus{Groups: []api.IPMPGroup{}, Interfaces: []api.IPMPInterface{}, Addresses: []api.IPMPAddress{}, Targets: []api.IPMPTargets{}})
		return nil
	}
	st, err := s.opts.IPMP.Status(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) ipmpProbes(w http.ResponseWriter, r *http.Request) error {
	since := time.Time{}
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return api.Errorf(api.CodeInvalid, "since=%q is not an RFC 3339 time", v)
		}
		since = t
	}
	out := []api.IPMPProbe{}
	if s.opts.IPMP != nil {
		ps, err := s.opts.IPMP.Probes(r.Context(), since)
		if err != nil {
			return err
		}
		out = append(out, ps...)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) ipmpOffline(offline bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req api.IPMPRequest
		if err := decodeBody(r, &req); err != nil {
			return err
		}
		if req.Interface == "" {
			return api.Errorf(api.CodeInvalid, "no interface named")
		}
		if s.opts.IPMP == nil {
			return api.Errorf(api.CodeNotFound, "%s: not a physical interface or not in an IPMP group (this node has no IPMP groups)", req.Interface)
		}
		var err error
		if offline {
			err = s.opts.IPMP.Offline(r.Context(), req.Interface, req.Force)
		} else {
			err = s.opts.IPMP.UndoOffline(r.Context(), req.Interface)
		}
		if err != nil {
			return err
		}
		st, err := s.opts.IPMP.Status(r.Context())
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, st)
		return nil
	}
}
