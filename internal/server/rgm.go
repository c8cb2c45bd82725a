package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/auth"
	"github.com/steady-ha/steady/internal/rgm"
)

// rgmRoutes are the resource group manager's routes. Reading is open to
// readers; changes need an administrator, except scha_control and
// scha_resource_setstatus, which a resource's own methods call: they are
// also allowed to the user the resource's methods run as.
func (s *Server) rgmRoutes() []routeSpec {
	routes := []routeSpec{
		{"GET /v1/rgm/types", auth.Read, s.listTypes},
		{"POST /v1/rgm/types", auth.Change, s.registerType},
		{"GET /v1/rgm/types/{name}", auth.Read, s.getType},
		{"DELETE /v1/rgm/types/{name}", auth.Change, s.unregisterType},
		{"POST /v1/rgm/ocf-test", auth.Change, s.testOCF},
		{"GET /v1/rgm/groups", auth.Read, s.listGroups},
		{"POST /v1/rgm/groups", auth.Change, s.createGroup},
		{"GET /v1/rgm/groups/{name}", auth.Read, s.getGroup},
		{"PATCH /v1/rgm/groups/{name}", auth.Change, s.setGroup},
		{"DELETE /v1/rgm/groups/{name}", auth.Change, s.deleteGroup},
		{"POST /v1/rgm/groups/{name}/wait", auth.Read, s.waitGroup},
		{"GET /v1/rgm/groups/{name}/why", auth.Read, s.whyGroup},
		{"GET /v1/rgm/resources", auth.Read, s.listResources},
		{"POST /v1/rgm/resources", auth.Change, s.createResource},
		{"GET /v1/rgm/resources/{name}", auth.Read, s.getResource},
		{"PATCH /v1/rgm/resources/{name}", auth.Change, s.setResource},
		{"DELETE /v1/rgm/resources/{name}", auth.Change, s.deleteResource},
		{"POST /v1/rgm/resources/{name}/clear", auth.Change, s.clearResource},
		{"GET /v1/rgm/resources/{name}/log", auth.Read, s.resourceLog},
		{"POST /v1/rgm/resources/{name}/status", auth.Read, s.setResourceStatus},
		{"POST /v1/rgm/control", auth.Read, s.control},
		{"GET /v1/rgm/cluster", auth.Read, s.rgmCluster},
		{"GET /v1/rgm/placement", auth.Read, s.rgmPlacement},
		{"POST /v1/rgm/groups/{name}/switch", auth.Change, s.switchGroup},
		{"POST /v1/cluster/evacuate", auth.Change, s.evacuate},
		{"GET /v1/rgm/config", auth.Read, s.exportRGM},
		{"POST /v1/rgm/apply", auth.Change, s.applyRGM},
	}
	for _, a := range []string{rgm.ActOnline, rgm.ActOffline, rgm.ActRestart, rgm.ActManage, rgm.ActUnmanage, rgm.ActSuspend, rgm.ActResume} {
		routes = append(routes, routeSpec{"POST /v1/rgm/groups/{name}/" + a, auth.Change, s.groupAction(a)})
	}
	for _, a := range []string{rgm.ActEnable, rgm.ActDisable, rgm.ActMonitor, rgm.ActUnmonitor} {
		routes = append(routes, routeSpec{"POST /v1/rgm/resources/{name}/" + a, auth.Change, s.resourceAction(a)})
	}
	return routes
}

func (s *Server) rgm() (*rgm.Manager, error) {
	if s.opts.RGM == nil {
		return nil, api.Errorf(api.CodeUnavailable, "the resource group manager is not running")
	}
	return s.opts.RGM, nil
}

// withRGM adapts a handler that needs the manager.
func (s *Server) withRGM(w http.ResponseWriter, r *http.Request, f func(m *rgm.Manager) (int, any, error)) error {
	m, err := s.rgm()
	if err != nil {
		return err
	}
	status, out, err := f(m)
	if err != nil {
		return err
	}
	if out == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeJSON(w, status, out)
	return nil
}

func (s *Server) listTypes(w http.ResponseWriter, r *http.Request) error {
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) { return http.StatusOK, m.Types(), nil })
}

func (s *Server) getType(w http.ResponseWriter, r *http.Request) error {
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		t, err := m.Type(r.PathValue("name"))
		return http.StatusOK, t, err
	})
}

func (s *Server) registerType(w http.ResponseWriter, r *http.Request) error {
	var req api.RGMTypeRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		var name string
		switch {
		case req.RTR != "" && req.OCF == "":
			file := req.RTRFile
			if file == "" {
				file = "RTR"
			}
			t, err := m.RegisterRTR(r.Context(), file, []byte(req.RTR))
			if err != nil {
				return 0, nil, err
			}
			name = t.Name
		case req.OCF != "" && req.RTR == "":
			t, err := m.RegisterOCF(r.Context(), req.OCF)
			if err != nil {
				return 0, nil, err
			}
			name = t.Name
		default:
			return 0, nil, api.Errorf(api.CodeInvalid, "give either the text of an RTR file (rtr) or an OCF agent (ocf), not both or neither")
		}
		t, err := m.Type(name)
		return http.StatusCreated, t, err
	})
}

func (s *Server) unregisterType(w http.ResponseWriter, r *http.Request) error {
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		return 0, nil, m.UnregisterType(r.Context(), r.PathValue("name"))
	})
}

// testOCF streams the steps of an OCF test as JSON lines, then the report.
func (s *Server) testOCF(w http.ResponseWriter, r *http.Request) error {
	var req api.OCFTestRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	m, err := s.rgm()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flush := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	flush()
	report, err := m.TestOCF(r.Context(), req, func(st api.OCFTestStep) {
		enc.Encode(api.OCFTestMessage{Step: &st})
		flush()
	})
	if err != nil {
		enc.Encode(api.OCFTestMessage{Error: errorFor(err)})
	} else {
		enc.Encode(api.OCFTestMessage{Report: &report})
	}
	flush()
	return nil
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) error {
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) { return http.StatusOK, m.Groups(r.Context()), nil })
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) error {
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		g, err := m.Group(r.Context(), r.PathValue("name"))
		return http.StatusOK, g, err
	})
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request) error {
	var req api.RGMGroupRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		if err := m.CreateGroup(r.Context(), req.Name, req.Props); err != nil {
			return 0, nil, err
		}
		g, err := m.Group(r.Context(), req.Name)
		return http.StatusCreated, g, err
	})
}

func (s *Server) setGroup(w http.ResponseWriter, r *http.Request) error {
	var req api.RGMSetRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		name := r.PathValue("name")
		if err := m.SetGroup(r.Context(), name, req.Props); err != nil {
			return 0, nil, err
		}
		g, err := m.Group(r.Context(), name)
		return http.StatusOK, g, err
	})
}

func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		return 0, nil, m.DeleteGroup(r.Context(), r.PathValue("name"))
	})
}

func (s *Server) groupAction(action string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
			name := r.PathValue("name")
			if err := m.GroupAction(r.Context(), name, action); err != nil {
				return 0, nil, err
			}
			g, err := m.Group(r.Context(), name)
			return http.StatusOK, g, err
		})
	}
}

// waitGroup answers when the group is no longer pending on this node, or
// after ?timeout= (default 60s, at most 1h) with the group as it is.
func (s *Server) waitGroup(w http.ResponseWriter, r *http.Request) error {
	timeout := time.Minute
	if v := r.URL.Query().Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > time.Hour {
			return api.Errorf(api.CodeInvalid, "timeout %q: give a duration up to 1h, such as 90s", v)
		}
		timeout = d
	}
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		name := r.PathValue("name")
		if _, err := m.WaitGroup(ctx, name); err != nil && r.Context().Err() == nil && ctx.Err() == nil {
			return 0, nil, err
		}
		g, err := m.Group(r.Context(), name)
		return http.StatusOK, g, err
	})
}

func (s *Server) whyGroup(w http.ResponseWriter, r *http.Request) error {
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		why, err := m.Why(r.Context(), r.PathValue("name"))
		return http.StatusOK, why, err
	})
}

func (s *Server) listResources(w http.ResponseWriter, r *http.Request) error {
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		group := r.URL.Query().Get("group")
		if group != "" {
			if _, err := m.Group(r.Context(), group); err != nil {
				return 0, nil, err
			}
		}
		out := m.Resources(r.Context(), group)
		if out == nil {
			out = []api.RGMResource{}
		}
		return http.StatusOK, out, nil
	})
}

func (s *Server) getResource(w http.ResponseWriter, r *http.Request) error {
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		res, err := m.Resource(r.Context(), r.PathValue("name"))
		return http.StatusOK, res, err
	})
}

func (s *Server) createResource(w http.ResponseWriter, r *http.Request) error {
	var req api.RGMResourceRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		if err := m.CreateResource(r.Context(), req); err != nil {
			return 0, nil, err
		}
		res, err := m.Resource(r.Context(), req.Name)
		return http.StatusCreated, res, err
	})
}

func (s *Server) setResource(w http.ResponseWriter, r *http.Request) error {
	var req api.RGMSetRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		name := r.PathValue("name")
		if err := m.SetResource(r.Context(), name, req.Props); err != nil {
			return 0, nil, err
		}
		res, err := m.Resource(r.Context(), name)
		return http.StatusOK, res, err
	})
}

func (s *Server) deleteResource(w http.ResponseWriter, r *http.Request) error {
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		return 0, nil, m.DeleteResource(r.Context(), r.PathValue("name"))
	})
}

func (s *Server) resourceAction(action string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
			name := r.PathValue("name")
			if err := m.ResourceAction(r.Context(), name, action); err != nil {
				return 0, nil, err
			}
			res, err := m.Resource(r.Context(), name)
			return http.StatusOK, res, err
		})
	}
}

func (s *Server) clearResource(w http.ResponseWriter, r *http.Request) error {
	var req api.RGMClearRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		name := r.PathValue("name")
		if err := m.Clear(r.Context(), name, req.Flag); err != nil {
			return 0, nil, err
		}
		res, err := m.Resource(r.Context(), name)
		return http.StatusOK, res, err
	})
}

func (s *Server) resourceLog(w http.ResponseWriter, r *http.Request) error {
	lines := 100
	if v := r.URL.Query().Get("lines"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100000 {
			return api.Errorf(api.CodeInvalid, "lines %q: give a number from 1 to 100000", v)
		}
		lines = n
	}
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		l, err := m.Log(r.PathValue("name"), lines)
		return http.StatusOK, l, err
	})
}

// mayActFor allows an administrator, or the user the resource's methods
// run as (its methods call scha_control and scha_resource_setstatus).
func (s *Server) mayActFor(m *rgm.Manager, r *http.Request, resource string) error {
	pr, _ := r.Context().Value(principalKey{}).(auth.Principal)
	if s.opts.Policy.Allow(pr, auth.Change) == nil {
		return nil
	}
	uid, err := m.RunsAs(resource)
	if errors.Is(err, rgm.ErrNotFound) || (err == nil && uid == pr.UID) {
		return nil // the request itself then names what is missing
	}
	return api.Errorf(api.CodeUnauthorized, "%s may not act for resource %s: only an administrator or the user its methods run as may", pr.String(), resource)
}

func (s *Server) setResourceStatus(w http.ResponseWriter, r *http.Request) error {
	var req api.StatusRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		name := r.PathValue("name")
		if err := s.mayActFor(m, r, name); err != nil {
			return 0, nil, err
		}
		if err := m.SetStatus(r.Context(), name, req.Group, req.Status, req.Message); err != nil {
			return 0, nil, err
		}
		res, err := m.Resource(r.Context(), name)
		return http.StatusOK, res, err
	})
}

// control answers scha_control: its outcome is the response's code, so a
// refusal is a 200 with a non-zero code, as the command's exit status.
func (s *Server) control(w http.ResponseWriter, r *http.Request) error {
	var req api.ControlRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		if err := s.mayActFor(m, r, req.Resource); err != nil {
			return http.StatusOK, api.ControlResponse{Code: api.SchaAccess, Message: err.Error()}, nil
		}
		return http.StatusOK, m.Control(r.Context(), req), nil
	})
}

func (s *Server) rgmCluster(w http.ResponseWriter, r *http.Request) error {
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) { return http.StatusOK, m.Cluster(), nil })
}

// rgmPlacement lists where every group runs across the cluster.
func (s *Server) rgmPlacement(w http.ResponseWriter, r *http.Request) error {
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		all, err := m.ClusterGroups(r.Context())
		if err != nil {
			return 0, nil, err
		}
		out := make([]api.RGMPlacement, 0, len(all))
		for _, p := range all {
			out = append(out, p)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
		return http.StatusOK, out, nil
	})
}

func (s *Server) switchGroup(w http.ResponseWriter, r *http.Request) error {
	var req api.RGMSwitchRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Node == "" {
		return api.Errorf(api.CodeInvalid, "switch: give the node to move the group to")
	}
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		name := r.PathValue("name")
		if err := m.Switch(r.Context(), name, req.Node); err != nil {
			return 0, nil, err
		}
		g, err := m.Group(r.Context(), name)
		return http.StatusOK, g, err
	})
}

func (s *Server) evacuate(w http.ResponseWriter, r *http.Request) error {
	var req api.EvacuateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	d := time.Duration(req.For)
	if d == 0 {
		d = time.Minute
	}
	if req.Node == "" || d < 0 || d > 24*time.Hour {
		return api.Errorf(api.CodeInvalid, "evacuate: give a node and a duration up to 24h")
	}
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		return 0, nil, m.Evacuate(r.Context(), req.Node, d)
	})
}

func (s *Server) exportRGM(w http.ResponseWriter, r *http.Request) error {
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) { return http.StatusOK, m.Export(), nil })
}

func (s *Server) applyRGM(w http.ResponseWriter, r *http.Request) error {
	var req api.RGMApplyRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	return s.withRGM(w, r, func(m *rgm.Manager) (int, any, error) {
		res, err := m.Apply(r.Context(), req.Declaration, req.DryRun)
		return http.StatusOK, res, err
	})
}
