package server

import (
	"context"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/auth"
	"github.com/steady-ha/steady/internal/pmf"
	"github.com/steady-ha/steady/internal/runas"
)

// The process monitor's routes are open to every caller the socket
// policy lets read: anyone may start a tag, which then runs as that caller
// (from the peer credentials, never from the request), and may change or
// stop only tags of their own unless they are an administrator.

func (s *Server) pmfOrUnavailable() (*pmf.Manager, error) {
	if s.opts.PMF == nil {
		return nil, api.Errorf(api.CodeUnavailable, "the process monitor is not running")
	}
	return s.opts.PMF, nil
}

// requester is the caller of r as the process monitor sees it.
func (s *Server) requester(r *http.Request) (auth.Principal, pmf.Requester) {
	pr, _ := r.Context().Value(principalKey{}).(auth.Principal)
	return pr, pmf.Requester{UID: pr.UID, Admin: s.opts.Policy.Allow(pr, auth.Change) == nil}
}

func (s *Server) getPMF(w http.ResponseWriter, r *http.Request) error {
	m, err := s.pmfOrUnavailable()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m.Status())
	return nil
}

func (s *Server) listPMF(w http.ResponseWriter, r *http.Request) error {
	m, err := s.pmfOrUnavailable()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m.List())
	return nil
}

func (s *Server) getPMFTag(w http.ResponseWriter, r *http.Request) error {
	m, err := s.pmfOrUnavailable()
	if err != nil {
		return err
	}
	t, err := m.Get(r.PathValue("tag"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) startPMF(w http.ResponseWriter, r *http.Request) error {
	m, err := s.pmfOrUnavailable()
	if err != nil {
		return err
	}
	var req api.PMFStartRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	pr, _ := s.requester(r)
	id, err := runas.ByUID(pr.UID, pr.GID)
	if err != nil {
		return err
	}
	// The processes run with the caller's own groups, as at the call.
	id.GID, id.Groups = pr.GID, pr.Groups
	spec := pmf.Spec{
		Tag: req.Tag, Command: req.Command, Dir: req.Dir, Owner: pmf.OwnerOf(id),
		Retries: req.Retries, Period: time.Duration(req.Period), Level: -1,
	}
	if req.Level != nil {
		spec.Level = *req.Level
	}
	if req.PassEnv {
		spec.Env = req.Env
	} else {
		spec.Env = append(minimalEnv(id, req.Env), req.Env...)
	}
	// Supervised programs (a data service's fault monitor) call pmfadm
	// and scha_* too: they reach the agent that runs them.
	if !hasVar(spec.Env, "STEADY_SOCKET") {
		spec.Env = append(spec.Env, "STEADY_SOCKET="+s.opts.Socket)
	}
	// The agent's time zone, and GORACE so that a race-detector build of
	// steady (the tests') runs scha_* in a monitor without its exit delay.
	for _, k := range []string{"TZ", "GORACE"} {
		if v, ok := os.LookupEnv(k); ok && !hasVar(spec.Env, k) {
			spec.Env = append(spec.Env, k+"="+v)
		}
	}
	spec.Action = req.Action
	h, err := m.Start(r.Context(), spec)
	if err != nil {
		return err
	}
	t, err := m.Get(h.Tag)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, t)
	return nil
}

// minimalEnv is the environment of a tag started without -E: the PATH
// given by the caller (or a default), HOME, USER and LOGNAME.
func minimalEnv(id runas.Identity, given []string) []string {
	env := []string{"HOME=" + id.Home, "USER=" + id.Name, "LOGNAME=" + id.Name}
	for _, e := range given {
		if strings.HasPrefix(e, "PATH=") {
			return env
		}
	}
	return append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
}

func hasVar(env []string, name string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, name+"=") {
			return true
		}
	}
	return false
}

func (s *Server) signalPMF(stop bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		m, err := s.pmfOrUnavailable()
		if err != nil {
			return err
		}
		var req api.PMFSignalRequest
		if err := decodeBody(r, &req); err != nil {
			return err
		}
		sig, err := pmf.ParseSignal(req.Signal)
		if err != nil {
			return err
		}
		if req.Wait < 0 || time.Duration(req.Wait) > 24*time.Hour {
			return api.Errorf(api.CodeInvalid, "wait %v is outside 0..24h", time.Duration(req.Wait))
		}
		_, who := s.requester(r)
		tag := r.PathValue("tag")
		if stop {
			err = m.Stop(r.Context(), tag, sig, time.Duration(req.Wait), who)
		} else {
			err = m.Kill(r.Context(), tag, sig, time.Duration(req.Wait), who)
		}
		if err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func (s *Server) modifyPMF(w http.ResponseWriter, r *http.Request) error {
	m, err := s.pmfOrUnavailable()
	if err != nil {
		return err
	}
	var req api.PMFModifyRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Retries == nil && req.Period == nil {
		return api.Errorf(api.CodeInvalid, "nothing to change: give retries, period or both")
	}
	var period *time.Duration
	if req.Period != nil {
		p := time.Duration(*req.Period)
		period = &p
	}
	_, who := s.requester(r)
	tag := r.PathValue("tag")
	if err := m.Modify(r.Context(), tag, req.Retries, period, who); err != nil {
		return err
	}
	t, err := m.Get(tag)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

// waitPMF waits until the tag is gone; ?timeout=D bounds the wait.
func (s *Server) waitPMF(w http.ResponseWriter, r *http.Request) error {
	m, err := s.pmfOrUnavailable()
	if err != nil {
		return err
	}
	ctx := r.Context()
	if v := r.URL.Query().Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return api.Errorf(api.CodeInvalid, "timeout=%q is not a positive duration", v)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	if err := m.Wait(ctx, r.PathValue("tag")); err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return api.Errorf(api.CodeTimeout, "tag %s still runs", r.PathValue("tag"))
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
