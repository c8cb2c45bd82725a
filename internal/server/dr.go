package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/auth"
	"github.com/steady-ha/steady/internal/dr"
	"github.com/steady-ha/steady/internal/rcm"
)

func (s *Server) drRoutes() []routeSpec {
	return []routeSpec{
		{"GET /v1/dr/aps", auth.Read, s.listAPs},
		{"POST /v1/dr/operations", auth.Change, s.drOperation},
		{"GET /v1/rcm/info", auth.Read, s.rcmInfo},
		{"GET /v1/rcm/clients", auth.Read, s.rcmClients},
		{"GET /v1/rcm/scripts", auth.Read, s.rcmScripts},
		{"POST /v1/rcm/scripts/reload", auth.Change, s.rcmReload},
	}
}

func apOf(ap dr.AP) api.AP {
	return api.AP{ID: ap.ID, Type: ap.Type, Class: ap.Class, Receptacle: ap.Receptacle, Occupant: ap.Occupant,
		Condition: ap.Condition, Busy: ap.Busy, Info: ap.Info, StatusTime: ap.StatusTime, PhysID: ap.PhysID, Resources: ap.Resources}
}

func answersOf(as []rcm.Answer) []api.RCMAnswer {
	out := make([]api.RCMAnswer, 0, len(as))
	for _, a := range as {
		out = append(out, api.RCMAnswer{Resource: a.Resource, Client: a.Client, Info: a.Info, Error: a.Error, State: a.State.String(), Seq: a.Seq})
	}
	return out
}

func (s *Server) listAPs(w http.ResponseWriter, r *http.Request) error {
	aps, err := s.opts.DR.List(r.Context())
	if err != nil && len(aps) == 0 {
		return err
	}
	if err != nil {
		// One driver failing does not hide the others' APs.
		s.log.Warn("listing attachment points", "err", err)
	}
	withResources := r.URL.Query().Get("resources") == "true"
	out := make([]api.AP, 0, len(aps))
	for _, ap := range aps {
		a := apOf(ap)
		if !withResources {
			a.Resources = nil
		}
		out = append(out, a)
	}
	// Compact: a machine with thousands of memory blocks makes a listing
	// of megabytes, and indenting it costs more than reading sysfs.
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	return json.NewEncoder(w).Encode(out)
}

// drOperation runs the function on each AP in turn, as cfgadm does; a
// failure on one is reported in its outcome and the next is still tried.
func (s *Server) drOperation(w http.ResponseWriter, r *http.Request) error {
	var req api.DRRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if len(req.APs) == 0 {
		return &api.Error{Code: api.CodeInvalid, Message: "no attachment point named"}
	}
	type fn func(ctx context.Context, id string) (*dr.Outcome, error)
	q := dr.Request{Force: req.Force, DryRun: req.DryRun}
	m := s.opts.DR
	funcs := map[string]fn{
		"configure":   func(ctx context.Context, id string) (*dr.Outcome, error) { return m.Configure(ctx, id, q) },
		"unconfigure": func(ctx context.Context, id string) (*dr.Outcome, error) { return m.Unconfigure(ctx, id, q) },
		"connect":     func(ctx context.Context, id string) (*dr.Outcome, error) { return m.Connect(ctx, id, q) },
		"disconnect":  func(ctx context.Context, id string) (*dr.Outcome, error) { return m.Disconnect(ctx, id, q) },
		"test":        m.Test,
	}
	f := funcs[req.Function]
	if f == nil {
		return &api.Error{Code: api.CodeInvalid, Message: fmt.Sprintf("unknown function %q: use configure, unconfigure, connect, disconnect or test", req.Function)}
	}
	if req.DryRun && req.Function != "unconfigure" && req.Function != "disconnect" {
		return &api.Error{Code: api.CodeInvalid, Message: "a dry run asks the users of what would go: it is for unconfigure and disconnect"}
	}
	var res api.DRResult
	for _, id := range req.APs {
		out, err := f(r.Context(), id)
		o := api.DROutcome{Function: req.Function, AP: api.AP{ID: id}}
		if out != nil {
			o = api.DROutcome{AP: apOf(out.AP), Function: out.Function, Done: out.Done, DryRun: out.DryRun,
				Answers: answersOf(out.Answers), Restored: out.Restored}
		}
		if err != nil {
			o.Done = false
			o.Error = errorFor(err)
		}
		res.Outcomes = append(res.Outcomes, o)
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) rcmInfo(w http.ResponseWriter, r *http.Request) error {
	names := r.URL.Query()["resource"]
	if len(names) == 0 {
		return &api.Error{Code: api.CodeInvalid, Message: "name a resource: ?resource=NAME"}
	}
	flags := rcm.Flags(0)
	if r.URL.Query().Get("dependents") == "true" {
		flags |= rcm.Dependents
	}
	res, err := s.opts.RCM.Info(r.Context(), names, flags)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.RCMInfo{Answers: answersOf(res.Answers)})
	return nil
}

func (s *Server) rcmClients(w http.ResponseWriter, r *http.Request) error {
	var out []api.RCMClient
	for _, c := range s.opts.RCM.Clients() {
		out = append(out, api.RCMClient{Name: c.Name, Interests: c.Interests, Registered: c.Registered, Error: c.Error})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) rcmScripts(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.opts.Scripts.List())
	return nil
}

func (s *Server) rcmReload(w http.ResponseWriter, r *http.Request) error {
	if err := s.opts.Scripts.Reload(r.Context()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.opts.Scripts.List())
	return nil
}
