package compat

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/pmf"
)

// PMFStartOptions are the choices of a process monitor start that the
// caller makes (pmfadm -c, steady pmf start).
type PMFStartOptions struct {
	Env     []string // -e additions
	PassEnv bool     // -E: the caller's whole environment
	Retries int
	Period  time.Duration
	Level   *int
	Action  string // -a, one string split like a command line
}

// NewPMFStart builds the API request of a start as the caller sees it:
// the command and the action program found through the caller's PATH, the
// caller's working directory, and its environment (all of it with -E, else
// its PATH and the -e additions).
func NewPMFStart(tag string, argv []string, o PMFStartOptions) (api.PMFStartRequest, error) {
	if len(argv) == 0 {
		return api.PMFStartRequest{}, fmt.Errorf("no command given")
	}
	cmd, err := lookPath(argv[0])
	if err != nil {
		return api.PMFStartRequest{}, err
	}
	dir, err := os.Getwd()
	if err != nil {
		return api.PMFStartRequest{}, fmt.Errorf("the working directory: %w", err)
	}
	for _, e := range o.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return api.PMFStartRequest{}, fmt.Errorf("environment entry %q is not NAME=VALUE", e)
		}
	}
	req := api.PMFStartRequest{
		Tag: tag, Command: append([]string{cmd}, argv[1:]...), Dir: dir, PassEnv: o.PassEnv,
		Retries: o.Retries, Period: api.Duration(o.Period), Level: o.Level,
	}
	if o.PassEnv {
		req.Env = mergeEnv(os.Environ(), o.Env)
	} else {
		req.Env = mergeEnv([]string{"PATH=" + os.Getenv("PATH")}, o.Env)
	}
	if o.Action != "" {
		words, err := pmf.SplitAction(o.Action)
		if err != nil {
			return api.PMFStartRequest{}, err
		}
		if words[0], err = lookPath(words[0]); err != nil {
			return api.PMFStartRequest{}, fmt.Errorf("action program: %w", err)
		}
		req.Action = words
	}
	return req, nil
}

// lookPath finds a program the way the caller's shell would.
func lookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s: not found or not executable", name)
	}
	return filepath.Abs(p)
}

// mergeEnv adds entries to env, replacing those of the same name.
func mergeEnv(env, add []string) []string {
	out := append([]string(nil), env...)
	for _, a := range add {
		k, _, _ := strings.Cut(a, "=")
		replaced := false
		for i, e := range out {
			if strings.HasPrefix(e, k+"=") {
				out[i], replaced = a, true
				break
			}
		}
		if !replaced {
			out = append(out, a)
		}
	}
	return out
}
